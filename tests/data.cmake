# Data preparation and dataset tests: the pfgm-prep binary-level test (label e2e) finds the
# binary through PFGM_PREP_BIN (a generator expression, so it follows the build configuration).
set_property(TEST prep_cli APPEND PROPERTY ENVIRONMENT "PFGM_PREP_BIN=$<TARGET_FILE:pfgm-prep>")
pfgm_label_e2e(prep_cli)
