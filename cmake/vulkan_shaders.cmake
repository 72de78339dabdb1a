# Compiles src/vulkan/shaders/*.comp to SPIR-V with glslc at build time and embeds the results in
# the library (a generated vk_shaders.cpp, see src/vulkan/shaders.h): no shader files at run time.
#
# A shader is built once per line of the form
#   // variant: NAME -DDEFINE=VALUE ...
# in its source (NAME is what the host code asks for); without such lines, once under its file name.
# Includes (*.glsl beside the shaders) are tracked through glslc's dependency files.
function(yiti_add_vulkan_shaders target dir)
  file(GLOB comps CONFIGURE_DEPENDS ${dir}/*.comp)
  set(out_dir ${CMAKE_BINARY_DIR}/vk_shaders)
  file(MAKE_DIRECTORY ${out_dir})
  set(names "")
  set(spvs "")
  foreach(comp ${comps})
    get_filename_component(base ${comp} NAME_WE)
    # The variant lines are read when configuring: editing them re-runs CMake.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${comp})
    file(STRINGS ${comp} lines REGEX "^// variant: ")
    if(NOT lines)
      set(lines "// variant: ${base}")
    endif()
    foreach(line ${lines})
      string(REGEX REPLACE "^// variant: *" "" spec "${line}")
      string(REGEX REPLACE " +" ";" spec "${spec}")
      list(POP_FRONT spec name)
      if(NOT name MATCHES "^[a-z0-9_]+$")
        message(FATAL_ERROR "${comp}: bad shader variant name '${name}'")
      endif()
      if(name IN_LIST names)
        message(FATAL_ERROR "${comp}: shader variant '${name}' is defined twice")
      endif()
      set(spv ${out_dir}/${name}.spv)
      add_custom_command(
        OUTPUT ${spv}
        COMMAND ${YITI_GLSLC} --target-env=vulkan1.1 -O -I ${dir} ${spec} -MD -MF ${spv}.d -o ${spv} ${comp}
        DEPENDS ${comp}
        DEPFILE ${spv}.d
        COMMENT "glslc ${name}"
        VERBATIM)
      list(APPEND names ${name})
      list(APPEND spvs ${spv})
    endforeach()
  endforeach()
  string(REPLACE ";" "|" names_arg "${names}")
  string(REPLACE ";" "|" spvs_arg "${spvs}")
  set(cpp ${out_dir}/vk_shaders.cpp)
  add_custom_command(
    OUTPUT ${cpp}
    COMMAND ${CMAKE_COMMAND} -DOUT=${cpp} -DNAMES=${names_arg} -DFILES=${spvs_arg}
            -P ${CMAKE_SOURCE_DIR}/cmake/embed_spirv.cmake
    DEPENDS ${spvs} ${CMAKE_SOURCE_DIR}/cmake/embed_spirv.cmake
    COMMENT "embedding the SPIR-V shaders"
    VERBATIM)
  target_sources(${target} PRIVATE ${cpp})
endfunction()
