#include <stdint.h>
#include <stdbool.h>

/* Minimal placeholder of a generated tree-sitter parser table. */
#define LANGUAGE_VERSION 14
#define STATE_COUNT 4
#define SYMBOL_COUNT 3

typedef struct {
  uint32_t version;
  uint32_t symbol_count;
  uint32_t state_count;
  const char *const *symbol_names;
} TSLanguage;

static const char *const ts_symbol_names[] = {
  "end",
  "module",
  "identifier",
};

static const TSLanguage language = {
  .version = LANGUAGE_VERSION,
  .symbol_count = SYMBOL_COUNT,
  .state_count = STATE_COUNT,
  .symbol_names = ts_symbol_names,
};

const TSLanguage *tree_sitter_pkl(void) {
  return &language;
}
