"""_elf.py — reads the exported (dynamic) symbol names of an ELF64 little-endian shared library,
enough to find a fast.so's tag: the prefix of its <tag>_signature / <tag>_create / <tag>_run
functions (include/vtopt/model.h). No dependencies beyond the standard library."""
import struct

SHT_DYNSYM = 11


class ElfError(Exception):
    pass


def dynamic_symbols(path):
    """Names of the defined symbols in the .dynsym section of the ELF file at path."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ElfError("%s: not an ELF file" % path)
    if data[4] != 2 or data[5] != 1:
        raise ElfError("%s: only 64-bit little-endian ELF libraries are supported" % path)
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    if e_shoff == 0 or e_shentsize < 64 or e_shoff + e_shnum * e_shentsize > len(data):
        raise ElfError("%s: no section headers" % path)

    def section(i):
        off = e_shoff + i * e_shentsize
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize
        return struct.unpack_from("<IIQQQQIIQQ", data, off)

    names = []
    for i in range(e_shnum):
        sh = section(i)
        if sh[1] != SHT_DYNSYM:
            continue
        sym_off, sym_size, link, entsize = sh[4], sh[5], sh[6], sh[9] or 24
        if link >= e_shnum:
            raise ElfError("%s: corrupt .dynsym" % path)
        strtab = section(link)
        str_off, str_size = strtab[4], strtab[5]
        if sym_off + sym_size > len(data) or str_off + str_size > len(data):
            raise ElfError("%s: truncated symbol table" % path)
        for k in range(sym_off, sym_off + sym_size - entsize + 1, entsize):
            st_name, st_info, st_other, st_shndx = struct.unpack_from("<IBBH", data, k)
            if st_shndx == 0 or st_name >= str_size:   # undefined (imported) or nameless
                continue
            end = data.find(b"\0", str_off + st_name, str_off + str_size)
            if end < 0:
                continue
            names.append(data[str_off + st_name:end].decode("ascii", "replace"))
    return names


def model_tags(path):
    """Tags t for which the library defines t_signature, t_create and t_run (sorted)."""
    syms = set(dynamic_symbols(path))
    tags = []
    for s in syms:
        if s.endswith("_signature"):
            t = s[:-len("_signature")]
            if t and t + "_create" in syms and t + "_run" in syms:
                tags.append(t)
    return sorted(tags)
