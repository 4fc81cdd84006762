/* fuzz_replay.c — replays inputs through a fuzz target's LLVMFuzzerTestOneInput without
 * libFuzzer, so the seed corpus and every crash input found run in `make test` (plain and under
 * ASan+UBSan). Each file runs whole and, to reach the loader's error paths deterministically,
 * also as 16 truncations and 16 single-byte corruptions. A crash, abort or sanitizer report fails
 * the run (the target aborts on a broken contract).
 * usage: fuzz_replay FILE|DIR... (in a DIR, every regular file except *.md) */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long n_runs;

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "fuzz_replay: cannot open %s\n", path); return 1; }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)(n > 0 ? n : 1)), *tmp = malloc((size_t)(n > 0 ? n : 1));
  if (!buf || !tmp || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
    fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
    fclose(f);
    free(buf);
    free(tmp);
    return 1;
  }
  fclose(f);
  printf("%s (%ld bytes)\n", path, n);
  fflush(stdout);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  n_runs++;
  for (int k = 1; k <= 16 && n > 1; k++) {   /* truncations: prefixes of k/17 of the file */
    size_t len = (size_t)n * (size_t)k / 17;
    memcpy(tmp, buf, len);   /* a copy of exactly len bytes: ASan sees reads past the end */
    LLVMFuzzerTestOneInput(tmp, len);
    n_runs++;
  }
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int k = 0; k < 16 && n > 0; k++) {    /* one byte changed, deterministic positions / values */
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    memcpy(tmp, buf, (size_t)n);
    tmp[(s >> 17) % (uint64_t)n] ^= (uint8_t)(1u + (s >> 50) % 255u);
    LLVMFuzzerTestOneInput(tmp, (size_t)n);
    n_runs++;
  }
  free(buf);
  free(tmp);
  return 0;
}

int main(int argc, char **argv) {
  int bad = 0, files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) { fprintf(stderr, "fuzz_replay: %s does not exist\n", argv[i]); bad = 1; continue; }
    if (!S_ISDIR(st.st_mode)) { bad |= replay_file(argv[i]); files++; continue; }
    struct dirent **ents;
    int n = scandir(argv[i], &ents, NULL, alphasort);
    for (int k = 0; k < n; k++) {
      const char *nm = ents[k]->d_name;
      size_t l = strlen(nm);
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], nm);
      if (nm[0] != '.' && !(l > 3 && !strcmp(nm + l - 3, ".md")) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        bad |= replay_file(path);
        files++;
      }
      free(ents[k]);
    }
    free(ents);
  }
  printf("fuzz_replay: %d file(s), %ld input(s) replayed%s\n", files, n_runs, bad ? ", with errors" : "");
  return bad || files == 0;
}
