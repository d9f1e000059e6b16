#ifndef APP_CMD_BENCH_H
#define APP_CMD_BENCH_H

/* `caption bench`: speed and memory of the model (CNN forward, caption
 * latency, batch and training throughput, peak RSS, GFLOPS against OpenBLAS
 * sgemm), optionally next to the same model in PyTorch (--torch). argv
 * starts at "bench". Exit status 0, 1 when a measurement failed, 2 on usage
 * errors. */
int cmd_bench(int argc, char **argv);

#endif
