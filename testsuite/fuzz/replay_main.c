/* replay_main.c — runs a libFuzzer target over files without libFuzzer (gcc builds, ctest): each
 * argument is a file or a folder of files, each file one input to LLVMFuzzerTestOneInput. A crash
 * or abort fails the test; "replayed N inputs" on success. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return 1; }
  size_t cap = 1 << 16, n = 0, got;
  uint8_t *buf = malloc(cap);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) { free(buf); buf = NULL; }
      else buf = nb;
    }
  }
  fclose(f);
  if (!buf) { fprintf(stderr, "replay: out of memory reading %s\n", path); return 1; }
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  long count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) { fprintf(stderr, "replay: %s: no such file or folder\n", argv[i]); return 1; }
    if (!S_ISDIR(st.st_mode)) {
      if (replay_file(argv[i])) return 1;
      count++;
      continue;
    }
    struct dirent **names;
    int n = scandir(argv[i], &names, NULL, alphasort);
    if (n < 0) { fprintf(stderr, "replay: cannot list %s\n", argv[i]); return 1; }
    for (int k = 0; k < n; k++) {
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", argv[i], names[k]->d_name);
      if (names[k]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        if (replay_file(p)) return 1;
        count++;
      }
      free(names[k]);
    }
    free(names);
  }
  if (count == 0) { fprintf(stderr, "replay: no inputs\n"); return 1; }
  printf("replayed %ld inputs\n", count);
  return 0;
}
