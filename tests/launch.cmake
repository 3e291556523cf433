# Tests of the launch/ and cluster/slurm/ scripts (tests/scripts/launch_*.sh): static checks
# (bash -n, shellcheck when installed; label unit: nothing runs), the mpirun recipes and the
# resume-until-done loop, the sbatch files against stand-in srun/mpirun/scontrol (label e2e:
# the scripts run as a user runs them), and quickstart.sh end to end at a tiny size under
# mpirun (about 10 s, labels e2e mpi; SKIPPED without Debian's dataset-fashion-mnist).
set(launch_scripts ${CMAKE_CURRENT_SOURCE_DIR}/scripts)
add_test(NAME launch_syntax COMMAND bash ${launch_scripts}/launch_lint.sh syntax)
add_test(NAME launch_shellcheck COMMAND bash ${launch_scripts}/launch_lint.sh shellcheck)
add_test(NAME launch_local COMMAND bash ${launch_scripts}/launch_local.sh)
add_test(NAME launch_slurm COMMAND bash ${launch_scripts}/launch_slurm.sh)
add_test(NAME launch_quickstart COMMAND bash ${launch_scripts}/launch_quickstart.sh)
foreach(t launch_syntax launch_shellcheck launch_local launch_slurm launch_quickstart)
  set_tests_properties(${t} PROPERTIES ENVIRONMENT "${PFGM_TEST_ENV}" WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "unit")
endforeach()
set_property(TEST launch_quickstart APPEND PROPERTY ENVIRONMENT
  "PFGM_TRAIN=$<TARGET_FILE:pfgm-train>")
pfgm_label_e2e(launch_local launch_slurm launch_quickstart)
set_property(TEST launch_quickstart APPEND PROPERTY LABELS mpi)
