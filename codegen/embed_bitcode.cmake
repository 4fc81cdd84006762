# embed_bitcode.cmake — writes IN (a binary file) as a C array named NAME into OUT.
# cmake -DIN=file.bc -DOUT=file.c -DNAME=sym -P embed_bitcode.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* generated from ${IN} by embed_bitcode.cmake: do not edit */\n#include <stddef.h>\n"
     "__attribute__((aligned(16))) const unsigned char ${NAME}[] = {\n${bytes}\n};\n"
     "const size_t ${NAME}_len = ${nbytes};\n")
