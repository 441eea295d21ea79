# Copies the built jobqueue package into DEST.
#   cmake -DBUILD_DIR=<build>/bindings/python -DDEST=<site-packages or any folder> -P install.cmake
# BUILD_DIR defaults to the folder this script is run from.
if(NOT DEFINED DEST)
  message(FATAL_ERROR "install.cmake: pass -DDEST=<folder> (e.g. a site-packages directory)")
endif()
if(NOT DEFINED BUILD_DIR)
  set(BUILD_DIR "${CMAKE_CURRENT_LIST_DIR}")
endif()
file(GLOB extension "${BUILD_DIR}/jobqueue/_jobqueue*.so")
if(NOT extension)
  message(FATAL_ERROR "install.cmake: no built extension in ${BUILD_DIR}/jobqueue "
                      "(build the jobqueue_python target first)")
endif()
file(REMOVE_RECURSE "${DEST}/jobqueue")
file(COPY "${BUILD_DIR}/jobqueue" DESTINATION "${DEST}"
     PATTERN "__pycache__" EXCLUDE)
message(STATUS "jobqueue installed in ${DEST}/jobqueue")
