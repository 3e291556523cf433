# Data preparation and dataset tests: the pfgm-prep binary-level test finds the binary
# through PFGM_PREP_BIN (a generator expression, so it follows the build configuration).
if(TARGET pfgm-prep AND TEST prep_cli)
  set_property(TEST prep_cli APPEND PROPERTY ENVIRONMENT "PFGM_PREP_BIN=$<TARGET_FILE:pfgm-prep>")
endif()
