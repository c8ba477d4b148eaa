# Writes the man page runsync(8) with help2man, from the built binary's own
# --help, so that it lists exactly the subcommands and flags the binary has:
# help2man formats `runsync --help`; this script walks the subcommands that
# help lists (recursively, `runsync run --help` names `run add` …) and adds
# one COMMANDS subsection per subcommand from its --help, and a CONFIGURATION
# section holding the example config. The hand-written sections (exit status,
# environment, files) come from cmake/runsync.8.h2m.
#
# usage: cmake -DRUNSYNC=<binary> -DHELP2MAN=<help2man> -DGZIP=<gzip>
#              -DSTATIC=<runsync.8.h2m> -DEXAMPLE=<runsync.toml.example>
#              -DOUT=<runsync.8> -P man_page.cmake
# Writes OUT and OUT.gz (gzip -9n); fails when a --help does not run.

cmake_minimum_required(VERSION 3.25)

# The binary runs as plain `runsync`, so usage lines name it so.
get_filename_component(bindir "${RUNSYNC}" DIRECTORY)
set(ENV{PATH} "${bindir}:$ENV{PATH}")
# Help output must not depend on the caller's terminal or locale.
set(ENV{LC_ALL} C.UTF-8)
unset(ENV{COLUMNS})

# roff text for one line of help output or of the example config. A leading
# "[" or "/" would start a section or a pattern of the help2man include file.
function(roff_escape out text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REPLACE "—" "\\(em" text "${text}")
  if(text MATCHES "^[.'[/]")
    set(text "\\&${text}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# "-c,--config TEXT" -> bold flag names, then the rest; "RUN INT" -> italic name.
function(roff_item out spec)
  string(REGEX MATCH "^([^ ]+)(.*)$" _ "${spec}")
  set(names "${CMAKE_MATCH_1}")
  set(rest "${CMAKE_MATCH_2}")
  string(REPLACE "," ";" names "${names}")
  set(parts "")
  foreach(name IN LISTS names)
    roff_escape(name "${name}")
    if(name MATCHES "^\\\\-")
      list(APPEND parts "\\fB${name}\\fR")
    else()
      list(APPEND parts "\\fI${name}\\fR")
    endif()
  endforeach()
  list(JOIN parts ", " joined)
  roff_escape(rest "${rest}")
  set(${out} "${joined}${rest}" PARENT_SCOPE)
endfunction()

set(commands "")

# Appends the subsection of `runsync <path> --help` to `commands`, then
# recurses into the subcommands it lists.
function(describe path)
  separate_arguments(args UNIX_COMMAND "${path}")
  execute_process(COMMAND runsync ${args} --help
                  OUTPUT_VARIABLE help RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "`runsync ${path} --help` failed (${rc}): ${err}")
  endif()
  string(REPLACE ";" "\\;" help "${help}")
  string(REPLACE "\n" ";" lines "${help}")

  set(text "")
  set(usage "")
  set(section "")
  set(pending "")     # an item whose description is on the next line
  set(children "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^Usage: (.*)$")
      set(usage "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^([A-Z][a-z]+):$")
      set(section "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^  ([^ ]|[^ ].*[^ ])  +([^ ].*)$")
      set(spec "${CMAKE_MATCH_1}")
      set(desc "${CMAKE_MATCH_2}")
      set(pending "")
      if(section STREQUAL "Subcommands")
        list(APPEND children "${path} ${spec}")
      endif()
      if(NOT spec STREQUAL "-h,--help")
        roff_item(item "${spec}")
        roff_escape(desc "${desc}")
        string(APPEND text ".TP\n${item}\n${desc}\n")
      endif()
    elseif(line MATCHES "^  ([^ ].*[^ ])$")
      set(pending "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^     +([^ ].*)$" AND NOT pending STREQUAL "")
      roff_item(item "${pending}")
      roff_escape(desc "${CMAKE_MATCH_1}")
      string(APPEND text ".TP\n${item}\n${desc}\n")
      set(pending "")
    elseif(NOT line STREQUAL "" AND usage STREQUAL "")
      roff_escape(summary "${line}")
      set(text "${summary}\n${text}")
    endif()
  endforeach()
  if(usage STREQUAL "")
    message(FATAL_ERROR "`runsync ${path} --help` printed no Usage: line")
  endif()
  if(NOT path STREQUAL "")
    string(REPLACE "\"" "" usage "${usage}")
    roff_escape(usage "${usage}")
    string(APPEND commands ".SS \"${usage}\"\n${text}")
  endif()
  set(commands "${commands}" PARENT_SCOPE)
  foreach(child IN LISTS children)
    string(STRIP "${child}" child)
    describe("${child}")
    set(commands "${commands}" PARENT_SCOPE)
  endforeach()
endfunction()

describe("")

# The example config, verbatim.
file(STRINGS "${EXAMPLE}" example_lines ENCODING UTF-8)
set(example "")
foreach(line IN LISTS example_lines)
  roff_escape(line "${line}")
  string(APPEND example "${line}\n")
endforeach()

get_filename_component(generated_dir "${OUT}" DIRECTORY)
set(generated "${generated_dir}/runsync.8.generated.h2m")
file(WRITE "${generated}" "[COMMANDS]
Each subcommand takes the options below; `runsync SUBCOMMAND \\-\\-help` prints them.
${commands}
[CONFIGURATION]
The configuration file, named by \\fB\\-\\-config\\fR, is TOML. Every key has a
default and unknown keys are an error. The example below, installed as
\\fI/etc/runsync/runsync.toml.example\\fR, documents every key:
.PP
.nf
.ft CR
${example}.ft R
.fi
")

execute_process(
  COMMAND "${HELP2MAN}" --no-info --section=8
          "--name=keep a local SQLite mirror of TestRail test runs"
          --include=${STATIC} --include=${generated} --output=${OUT} runsync
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed (${rc}): ${err}")
endif()
execute_process(COMMAND "${GZIP}" -9n -c "${OUT}" OUTPUT_FILE "${OUT}.gz" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip -9n ${OUT} failed (${rc})")
endif()
