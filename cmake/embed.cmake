# Writes a C file holding the bytes of a file, for assets served or inlined by the binary (the
# dashboard's page and script, Chart.js for the dashboard and the load reports): the binary stays
# one file that needs nothing at run time, and the library comes from the distribution's package
# at build time (never a CDN). Run by the build (CMakeLists.txt ag_embed), not by hand:
#   cmake -DIN=file -DOUT=file.c -DSYM=name -P cmake/embed.cmake
# defines
#   const unsigned char name[];    the bytes, then a NUL (so text can be used as a C string)
#   const size_t name_len;         the bytes, without the NUL
#   const char name_etag[];        "\"<first 16 hex digits of the SHA-256>\"", an HTTP ETag
foreach(v IN ITEMS IN OUT SYM)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "embed.cmake: -D${v}=... missing")
  endif()
endforeach()
file(READ "${IN}" hex HEX)
file(SHA256 "${IN}" sha)
string(SUBSTRING "${sha}" 0 16 etag)
string(LENGTH "${hex}" nhex)
math(EXPR len "${nhex} / 2")
# 16 bytes a line, each as 0xNN,
string(REGEX REPLACE "([0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])"
       "\\1\n" hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by cmake/embed.cmake at build time: do not edit. */\n"
  "#include <stddef.h>\n\n"
  "extern const unsigned char ${SYM}[];\n"
  "extern const size_t ${SYM}_len;\n"
  "extern const char ${SYM}_etag[];\n\n"
  "const unsigned char ${SYM}[] = {\n${hex}\n0x00};\n"
  "const size_t ${SYM}_len = ${len};\n"
  "const char ${SYM}_etag[] = \"\\\"${etag}\\\"\";\n")
file(RENAME "${OUT}.tmp" "${OUT}")
