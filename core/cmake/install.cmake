# SPDX-License-Identifier: BSL-1.0
# cmake --install: headers, libraries, troupe-node, and an exported package
# (find_package(troupe 0.2 REQUIRED) gives troupe::core, ::net, ::actors,
# ::saga, ::node_main) plus a pkg-config file.
include(CMakePackageConfigHelpers)

set(TROUPE_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/troupe")
install(TARGETS troupe_usage troupe_core troupe_net troupe_actors troupe_saga troupe_node_main
        EXPORT troupeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS troupe-node RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(dir core net actors saga)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/include/troupe
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endforeach()
install(FILES ${TROUPE_GENERATED_INCLUDE}/troupe/config.hpp
              ${TROUPE_GENERATED_INCLUDE}/troupe/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/troupe)
install(EXPORT troupeTargets NAMESPACE troupe:: DESTINATION ${TROUPE_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/troupeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/troupeConfig.cmake INSTALL_DESTINATION ${TROUPE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)  # 0.x: a minor release may break the API
install(FILES ${PROJECT_BINARY_DIR}/troupeConfig.cmake ${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake
        DESTINATION ${TROUPE_CMAKE_DIR})

# pkg-config: the same flags for builds without CMake. The libraries are
# static, so what they link is in Requires (not Requires.private).
set(TROUPE_PC_CFLAGS "-std=c++20 -DBOOST_ASIO_NO_DEPRECATED -DBOOST_ASIO_SEPARATE_COMPILATION -DBOOST_BEAST_SEPARATE_COMPILATION")
set(TROUPE_PC_REQUIRES "libcrypto libssl sqlite3 libxxhash")
if(TROUPE_IO STREQUAL "io_uring")
  string(APPEND TROUPE_PC_CFLAGS " -DBOOST_ASIO_HAS_IO_URING -DBOOST_ASIO_HAS_IO_URING_AS_DEFAULT")
  string(APPEND TROUPE_PC_REQUIRES " liburing")
endif()
# Relocatable: the prefix is found from the .pc file's own place, so
# `cmake --install --prefix DIR` works without reconfiguring.
file(RELATIVE_PATH TROUPE_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${CMAKE_CURRENT_LIST_DIR}/troupe.pc.in ${PROJECT_BINARY_DIR}/troupe.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/troupe.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/troupe)

# The Debian package (./scripts/package): configured with
# -DTROUPE_PACKAGE=ON -DCMAKE_INSTALL_PREFIX=/usr. It adds the systemd unit,
# the default configuration and the maintainer scripts that create the
# `troupe` user and /var/lib/troupe.
option(TROUPE_PACKAGE "Install the systemd unit and /etc/troupe (for the .deb)" OFF)
if(TROUPE_PACKAGE)
  set(pkg ${PROJECT_SOURCE_DIR}/scripts/packaging)
  install(FILES ${pkg}/troupe-node.service DESTINATION lib/systemd/system)
  install(FILES ${pkg}/troupe.toml DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/troupe)
  install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/CHANGELOG.md
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/troupe)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/troupe)

  set(CPACK_GENERATOR DEB)
  set(CPACK_PACKAGE_NAME troupe)
  set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
  set(CPACK_PACKAGE_CONTACT "troupe maintainers <troupe@localhost>")
  set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
      "asynchronous actor framework for C++20: troupe-node, libraries and CMake package")
  set(CPACK_PACKAGE_DESCRIPTION
      "Coroutine actors on io_uring shards, a cluster transport, a consistent-hash\n ring-router, a lock-manager and a saga orchestrator; troupe-node runs one\n node as a systemd service, and find_package(troupe) builds programs on them.")
  set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # troupe_<version>_amd64.deb
  set(CPACK_DEBIAN_PACKAGE_SECTION devel)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
  # What troupe-node runs on, and what find_package(troupe) needs (the
  # headers and libraries its targets name).
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "adduser, libboost1.81-dev, libboost-json1.81-dev, liburing-dev, libssl-dev, libcereal-dev, libsqlite3-dev, libxxhash-dev, libcli11-dev, libsystemd-dev, libspdlog-dev")
  file(WRITE ${PROJECT_BINARY_DIR}/conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/troupe/troupe.toml\n")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${pkg}/postinst ${pkg}/prerm ${PROJECT_BINARY_DIR}/conffiles)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
  include(CPack)
endif()
