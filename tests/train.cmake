# Process-level tests of pfgm-train (shell scripts in tests/scripts/, label e2e, plus mpi for
# those under mpirun): kill a rank, preemption by SIGTERM on one rank and on two, kill -9
# during a checkpoint write, two trainers on one run directory, pfgm-sample during training.
# They use Fashion-MNIST from Debian's dataset-fashion-mnist package (SKIPPED when it is
# missing). The C tests that run a whole training through pfgm_train are e2e as well.
set(PFGM_TRAIN_TEST_ENV ${PFGM_TEST_ENV}
  "PFGM_TRAIN=$<TARGET_FILE:pfgm-train>" "PFGM_PREP=$<TARGET_FILE:pfgm-prep>" "PFGM_SAMPLE=$<TARGET_FILE:pfgm-sample>"
  "MPIEXEC=${MPIEXEC_EXECUTABLE}")
set(scripts ${CMAKE_CURRENT_SOURCE_DIR}/scripts)
add_test(NAME train_kill_rank COMMAND bash ${scripts}/train_kill_rank.sh)
add_test(NAME train_preempt COMMAND bash ${scripts}/train_preempt.sh 1)
add_test(NAME train_preempt_mpi COMMAND bash ${scripts}/train_preempt.sh 2)
add_test(NAME train_crash_in_save COMMAND bash ${scripts}/train_crash_in_save.sh)
# one trainer per run directory (the run-directory lock)
add_test(NAME train_two_trainers COMMAND bash ${scripts}/train_two_trainers.sh)
# pfgm-sample in a loop against a trainer saving every step with keep_last 1: a short run in
# the suite, the 200-invocation run of issue 11 labelled slow
add_test(NAME sample_during_training COMMAND bash ${scripts}/sample_during_training.sh 20)
add_test(NAME sample_during_training_200 COMMAND bash ${scripts}/sample_during_training.sh 200)
foreach(t train_kill_rank train_preempt train_preempt_mpi train_crash_in_save train_two_trainers
          sample_during_training sample_during_training_200)
  set_tests_properties(${t} PROPERTIES ENVIRONMENT "${PFGM_TRAIN_TEST_ENV}" WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "e2e")
endforeach()
# train_preempt.sh runs `mpirun -np 1` and `-np 2`, train_kill_rank.sh `mpirun -np 2`
set_tests_properties(train_kill_rank train_preempt train_preempt_mpi PROPERTIES LABELS "e2e;mpi")
# about a minute on 2 idle cores (the 20-invocation run above: a few seconds)
set_tests_properties(sample_during_training_200 PROPERTIES LABELS "e2e;slow" TIMEOUT 1800)
# whole trainings through the library: one process, and under mpirun -np 2 (label mpi kept)
pfgm_label_e2e(train_nonfinite train_stop train_resume train_fault train_device_comm train_resume_mpi)
