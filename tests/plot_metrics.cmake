# launch/plot_metrics.py's reader (tests/scripts/test_plot_metrics.py: Python's unittest,
# standard library only, no matplotlib): the curve of a killed and resumed run has strictly
# increasing steps (issue 11, defect 5). Registered only where a python3 is found.
find_program(PFGM_PYTHON3 NAMES python3)
if(PFGM_PYTHON3)
  add_test(NAME plot_metrics COMMAND ${PFGM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_plot_metrics.py)
  set_tests_properties(plot_metrics PROPERTIES ENVIRONMENT "${PFGM_TEST_ENV}"
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} TIMEOUT 60 LABELS "unit")
else()
  message(STATUS "python3 not found: test plot_metrics (launch/plot_metrics.py) not registered")
endif()
