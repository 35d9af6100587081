#!/usr/bin/env bash
# Mutation testing of the numerical core and the data/metrics layer, module by module.
#
#   pip install mutmut==3.8.1            # not a dependency of the package; never in CI
#   bash tools/mutation.sh               # every module of [tool.mutmut] in pyproject.toml
#   bash tools/mutation.sh linalg        # one module (a dotted prefix below lightning_energy)
#
# mutmut copies the package into mutants/ (scratch, delete it afterwards), maps every function
# to the tests that reach it, then runs only those tests for each mutant. Per-module wall times
# are printed; the summary is `python tools/mutation_report.py`.
set -uo pipefail
cd "$(dirname "$0")/.."
modules=("$@")
if [ ${#modules[@]} -eq 0 ]; then
    modules=(energies.robust datasets.splits callbacks.selection adjoints linalg metrics solvers)
fi
for module in "${modules[@]}"; do
    start=$(date +%s)
    mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "lightning_energy.${module}.*" > /dev/null || echo "${module}: mutmut exited with $?"
    echo "${module}: $(( $(date +%s) - start )) s"
done
python tools/mutation_report.py
