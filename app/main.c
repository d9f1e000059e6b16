#include <stdio.h>
#include <string.h>

#include "cmd_average.h"
#include "cmd_batch.h"
#include "cmd_bench.h"
#include "cmd_caption.h"
#include "cmd_eval.h"
#include "cmd_export.h"
#include "cmd_train.h"
#include "cmd_view.h"

/* Subcommands take argv from their own name on, so each parses `--help` itself. */
int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) return cmd_eval(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "shapes") == 0) return cmd_shapes(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "export") == 0) return cmd_export(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "view") == 0) return cmd_view(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "batch") == 0) return cmd_batch(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "average") == 0) return cmd_average(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "bench") == 0) return cmd_bench(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("caption %s\n", CAPTION_VERSION);
        return 0;
    }
    return cmd_caption(argc, argv);
}
