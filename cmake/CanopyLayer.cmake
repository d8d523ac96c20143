# Helpers that keep each layer's CMake short: a layer is a folder of .cpp (and .cu) files that
# becomes one static library, linked to the layers it depends on.

set(CANOPY_WARNING_FLAGS -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wpedantic)

function(canopy_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${CANOPY_WARNING_FLAGS}>)
  if(CANOPY_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  if(CANOPY_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(CANOPY_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# canopy_layer(NAME <name> DIR <folder> [DEPS <targets...>])
# Globs <folder>/*.cpp (and *.cu when CUDA is on) into the static library canopy_<name>.
function(canopy_layer)
  cmake_parse_arguments(L "" "NAME;DIR" "DEPS;CUDA_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${L_DIR}/*.cpp)
  if(CANOPY_HAVE_CUDA)
    file(GLOB cu_srcs CONFIGURE_DEPENDS ${L_DIR}/*.cu)
    list(APPEND srcs ${cu_srcs})
  endif()
  if(NOT srcs)
    add_library(canopy_${L_NAME} INTERFACE)
    target_include_directories(canopy_${L_NAME} INTERFACE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(canopy_${L_NAME} INTERFACE ${L_DEPS})
    return()
  endif()
  add_library(canopy_${L_NAME} STATIC ${srcs})
  target_include_directories(canopy_${L_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(canopy_${L_NAME} PUBLIC ${L_DEPS})
  set_target_properties(canopy_${L_NAME} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  canopy_warnings(canopy_${L_NAME})
endfunction()

# canopy_test(NAME <name> DIR <folder> DEPS <targets...> [LABELS <labels...>])
# One GoogleTest binary per folder of tests; every TEST becomes its own ctest entry.
function(canopy_test)
  cmake_parse_arguments(T "" "NAME;DIR" "DEPS;LABELS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${T_DIR}/*.cpp)
  if(CANOPY_HAVE_CUDA)
    file(GLOB cu_srcs CONFIGURE_DEPENDS ${T_DIR}/*.cu)
    list(APPEND srcs ${cu_srcs})
  endif()
  if(NOT srcs)
    return()
  endif()
  add_executable(test_${T_NAME} ${srcs})
  target_link_libraries(test_${T_NAME} PRIVATE ${T_DEPS} canopy_testing GTest::gtest GTest::gtest_main)
  canopy_warnings(test_${T_NAME})
  if(NOT T_LABELS)
    set(T_LABELS cpu)
  endif()
  gtest_discover_tests(test_${T_NAME}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    # Passive OpenMP waiting: ctest runs test binaries side by side, and threads that spin at
    # barriers while another process holds the cores slow a run down by 10-20x.
    PROPERTIES LABELS "${T_LABELS}" ENVIRONMENT "OMP_WAIT_POLICY=passive"
    DISCOVERY_TIMEOUT 60)
endfunction()
