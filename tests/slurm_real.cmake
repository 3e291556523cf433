# The cluster/slurm/*.sbatch files under a real SLURM (tests/scripts/slurm_real.sh): munged,
# slurmctld and slurmd for localhost under a temporary state directory, the project's sbatch
# files submitted through the documented site settings; preemption with USR1 -> checkpoint,
# exit 75, requeue and resume; an external requeue; a plain scancel that cancels for good;
# sample.sbatch on every rank. Label cluster (also e2e, mpi); SKIPPED (77) without root,
# Debian's slurm-wlm and munge (launch/install_deps.sh installs them) or the Fashion-MNIST
# package, or when the daemons do not start.
add_test(NAME slurm_real COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/slurm_real.sh)
set_tests_properties(slurm_real PROPERTIES ENVIRONMENT "${PFGM_TEST_ENV}"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} SKIP_RETURN_CODE 77 TIMEOUT 300
  LABELS "e2e;mpi;cluster" RUN_SERIAL TRUE)
set_property(TEST slurm_real APPEND PROPERTY ENVIRONMENT "PFGM_BIN_DIR=$<TARGET_FILE_DIR:pfgm-train>")
