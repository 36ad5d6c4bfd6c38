# SPDX-License-Identifier: BSL-1.0
# Writes a C++ source whose function returns a text file's contents, so a
# program carries the file (e.g. docs/openapi.json) without reading it at run
# time. cmake -DIN=FILE -DOUT=FILE.cpp -DFUNCTION=ns::name -DINCLUDE=header -P embed_text.cmake
# The function is `std::string_view FUNCTION() noexcept`, declared in INCLUDE.
foreach(var IN ITEMS IN OUT FUNCTION INCLUDE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_text.cmake: -D${var}=... is required")
  endif()
endforeach()
file(READ "${IN}" text)
set(delimiter "troupe_embed")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed_text.cmake: ${IN} contains the raw-string delimiter ${delimiter}")
endif()
set(content "// Generated from ${IN} by net/cmake/embed_text.cmake; do not edit.
#include <${INCLUDE}>

std::string_view ${FUNCTION}() noexcept {
  static constexpr char text[] = R\"${delimiter}(${text})${delimiter}\";
  return {text, sizeof text - 1};
}
")
# Rewritten only when it changes, so an unchanged file rebuilds nothing.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${content}")
