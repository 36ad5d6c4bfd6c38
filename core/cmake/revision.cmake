# SPDX-License-Identifier: BSL-1.0
# Writes OUT, a source file defining troupe::revision(), from `git rev-parse`
# of SRC; rewritten only when the revision changed, so builds stay cached.
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE failed ERROR_QUIET)
if(failed OR rev STREQUAL "")
  set(rev "unknown")
else()
  execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no
                  OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT changes STREQUAL "")
    string(APPEND rev "-dirty")
  endif()
endif()
set(text "// Generated at build time by core/cmake/revision.cmake.\n#include <troupe/version.hpp>\nconst char* troupe::revision() noexcept { return \"${rev}\"; }\nconst char* troupe::library_version() noexcept { return TROUPE_VERSION_STRING; }\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
