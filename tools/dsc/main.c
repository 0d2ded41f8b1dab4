/* dsc — the command-line tool.  Argument parsing and dispatch only: the work
 * is done by the library (frontend, passes, printers, runtime).
 *
 * Exit status: 0 success, 1 the model or a file has errors (diagnostics were
 * printed), 2 usage error. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "dsc.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/precision.h"
#include "runtime/atomic_file.h"
#include "runtime/bench.h"
#include "runtime/calibrate.h"
#include "runtime/dsm.h"
#include "runtime/hwdb.h"
#include "runtime/host_jit.h"
#include "runtime/nvrtc.h"
#include "runtime/precision_guard.h"
#include "runtime/run.h"
#include "runtime/sparse.h"

enum { EXIT_OK = 0, EXIT_DIAG = 1, EXIT_USAGE = 2 };

static const char *prog = "dsc";

static const char usage_main[] =
    "usage: dsc COMMAND [OPTIONS] [FILE]\n"
    "\n"
    "dsc compiles neural-network inference graphs written in DSG.\n"
    "\n"
    "commands:\n"
    "  check FILE         parse and type-check a .dsg model; report every error\n"
    "  compile FILE       optimize a model; write it as DSG or Graphviz, its kernels (CUDA C,\n"
    "                     cubin), or a compiled model with its weights (-o MODEL.dsm)\n"
    "  run FILE           run a model (.dsg or .dsm) on inputs (.npy) and weights (safetensors)\n"
    "  bench FILE         time a model (.dsg or .dsm): median and min latency, throughput\n"
    "  inspect FILE.dsm   show a compiled model: version, graph, kernels, weights, checksum\n"
    "  prune FILE         write the model's weights block-pruned (@sparse, --sparsity)\n"
    "  calibrate FILE     int8 activation ranges from input sets (.npy)\n"
    "  passes             list the optimization passes in pipeline order\n"
    "  hwdb               list the hardware database and what this machine selects\n"
    "  help [COMMAND]     show help for dsc or for one command\n"
    "\n"
    "options:\n"
    "  -h, --help         show this help\n"
    "  --version          print the version\n"
    "\n"
    "Run 'dsc COMMAND --help' for the options of a command.\n"
    "Exit status: 0 success, 1 errors in the model or files, 2 usage error.\n";

static const char usage_check[] =
    "usage: dsc check FILE\n"
    "\n"
    "Parses FILE, resolves names, inlines fns and infers every dtype and shape.\n"
    "Prints every error as file:line:col with the source line; prints nothing\n"
    "else on success unless -v is given.\n"
    "\n"
    "options:\n"
    "  -v, --verbose      print a one-line summary on success\n"
    "  -h, --help         show this help\n";

static const char usage_compile[] =
    "usage: dsc compile FILE [-o OUT] [--emit=dsg|dot|cuda|cubin|dsm] [--target=sm_XX]\n"
    "                   [-O0|-O1|-O2] [--weights FILE | --random-weights [--seed N]]\n"
    "                   [--disable-pass=NAME] [--dump-before=PASS|all]\n"
    "                   [--dump-after=PASS|all] [--dump-dir DIR]\n"
    "                   [--stats[=text|json]] [--bind DIM=VALUE[,DIM=VALUE]...]\n"
    "                   [--sparsity=S] [--sparse-block=RxC]\n"
    "                   [--precision=f32|f16|bf16|int8] [--max-rel-error E]\n"
    "                   [--no-guard] [--calibrate DIR [--calibrate-percentile P]]\n"
    "\n"
    "Compiles FILE through the pass pipeline and writes the result.  The weights\n"
    "file is needed only for a compiled model (--emit=dsm); the accuracy guard and\n"
    "calibration use --weights when given.\n"
    "\n"
    "options:\n"
    "  -o OUT             write to OUT ('-' or no -o: standard output); the file\n"
    "                     appears only when completely written\n"
    "  --emit=dsg         the optimized graph as DSG source (default)\n"
    "  --emit=dot         the optimized graph as Graphviz (ops as nodes, tensors on edges)\n"
    "  --emit=cuda        the model's kernels as CUDA C: -o DIR gets DIR/<kernel>.cu\n"
    "                     (threads per block from --target's hwdb entry, else 256)\n"
    "  --emit=cubin       also compile them with NVRTC (no GPU needed): DIR/<kernel>.cu\n"
    "                     and DIR/<kernel>.cubin, and print per kernel its registers,\n"
    "                     shared memory, stack and spill bytes; uses the kernel cache\n"
    "                     ($DSC_CACHE_DIR, else $XDG_CACHE_HOME/dsc or ~/.cache/dsc;\n"
    "                     DSC_CACHE=0 turns it off; see docs/cuda.md)\n"
    "  --emit=dsm         a compiled model (the default when OUT ends in .dsm): one\n"
    "                     self-contained file (safetensors) with the optimized graph,\n"
    "                     fusion groups, memory plan, kernel IR and the weights the\n"
    "                     optimized graph uses; 'dsc run' and 'dsc bench' run it,\n"
    "                     'dsc inspect' shows it (docs/formats.md); needs -o FILE\n"
    "  --weights FILE     for dsm: the weights (default: the model's 'weights' file,\n"
    "                     found relative to the model file)\n"
    "  --random-weights   for dsm: seeded random weights instead, the same values as\n"
    "                     'dsc run --random-inputs --random-weights' with the same\n"
    "                     --seed and --bind\n"
    "  --seed N           for dsm with --random-weights: the seed (default 0)\n"
    "  --target=sm_XX     the GPU architecture for cuda/cubin (sm_75, sm_90, ...;\n"
    "                     default for cubin: the first GPU's)\n"
    "  -O0, -O1, -O2      optimization level (default -O2; -O0 runs only\n"
    "                     sparsify, which applies @sparse at every level)\n"
    "  --disable-pass=NAME  skip one pass (repeatable; see 'dsc passes';\n"
    "                     sparsify always runs)\n"
    "  --dump-before=PASS|all  write the graph before the pass (or every pass)\n"
    "  --dump-after=PASS|all   write the graph after the pass (or every pass)\n"
    "  --dump-dir DIR     where dumps go (default: the current directory); files\n"
    "                     are named NN-before-PASS.dsg / NN-after-PASS.dsg, NN the\n"
    "                     pass's position in the pipeline; each is valid DSG\n"
    "  --stats[=json]     print per pass its time and operations before/after, and\n"
    "                     for the result: operations, kernels (fusion groups), bytes\n"
    "                     of activations moved unfused vs fused (weights, read once\n"
    "                     either way, apart), the weight bytes as stored (int8 or\n"
    "                     f16 weights computed at load time replace the f32 params)\n"
    "                     in total and per dtype, planned peak memory vs the sum of\n"
    "                     all intermediate values; to standard error when the\n"
    "                     compiled output goes to standard output, else to standard\n"
    "                     output.  json: one object with keys ops, kernels,\n"
    "                     bytes_unfused, bytes_fused, weight_bytes,\n"
    "                     weight_bytes_by_dtype, peak_bytes_planned,\n"
    "                     peak_bytes_naive, gemm_weight_params,\n"
    "                     gemm_weight_params_kept, sparse_bytes_saved, sparse_layers\n"
    "                     (per pruned param: the cost model's estimate and choice),\n"
    "                     dims and passes\n"
    "  --sparsity=S       prune every GEMM weight (2-D param used by linear, or as\n"
    "                     matmul's right operand) to remove at least the fraction S\n"
    "                     of its blocks (by block L2 norm, when the weights load;\n"
    "                     a param's own @sparse hint wins; docs/sparsity.md)\n"
    "  --sparse-block=RxC the block shape for --sparsity and for @sparse hints that\n"
    "                     give none (default 4x4)\n"
    "  --bind DIM=VALUE   dim values for --stats, --random-weights and the accuracy\n"
    "                     guard (repeatable or comma-separated); otherwise a dim's\n"
    "                     <= bound, else 8\n"
    "  --precision=P      GEMMs and convolutions in P: f32 (default, no change), f16,\n"
    "                     bf16 (f32 accumulation) or int8 (linear only: weights per\n"
    "                     output channel, activations per row at run time); see\n"
    "                     docs/precision.md.  @precision(dtype) on a let overrides\n"
    "  --max-rel-error E  the accuracy guard's budget (default 2e-2 for int8, 2e-3\n"
    "                     for f16 and bf16): the model runs as f32 and at P on seeded\n"
    "                     random inputs (on cpu, else ref) and, while the largest\n"
    "                     relative L2 output error is over E, the op whose error\n"
    "                     alone is largest goes back to f32; prints the per-op\n"
    "                     table to standard error\n"
    "  --no-guard         lower every op the policy selects, unmeasured\n"
    "  --calibrate DIR    input sets DIR/SET/INPUT.npy (or one set DIR/INPUT.npy):\n"
    "                     int8 activations get static per-tensor scales from the\n"
    "                     f32 model's inputs to each op on these sets (instead of\n"
    "                     dynamic per-row scales), and the guard measures on the\n"
    "                     first set\n"
    "  --calibrate-percentile P  the range is this percentile of |x| over all\n"
    "                     sets (default 100: min-max)\n"
    "  -h, --help         show this help\n";

static const char usage_run[] =
    "usage: dsc run FILE [--input NAME=FILE.npy]... [--output-dir DIR]\n"
    "               [--weights FILE] [--random-inputs] [--random-weights]\n"
    "               [--seed N] [--bind DIM=VALUE]... [--device auto|cpu|cuda|ref]\n"
    "               [-O0|-O1|-O2] [--disable-pass=NAME]... [--precision=P]\n"
    "               [--sparsity=S] [--sparse-block=RxC] [--gemm=auto|generated|cublas]\n"
    "               [--baseline=cublas]\n"
    "\n"
    "Runs the model and prints one line per output: name, dtype and shape, min,\n"
    "max and mean (and the count of non-finite values, if any).  FILE is DSG\n"
    "source or a compiled model (dsc compile -o MODEL.dsm; told apart by content),\n"
    "which is run as compiled (no -O, --disable-pass, --precision or --sparsity)\n"
    "with its own weights "
    "unless --weights or --random-weights is given.\n"
    "\n"
    "options:\n"
    "  --input NAME=FILE  the input NAME from a .npy file (repeat for each input)\n"
    "  --output-dir DIR   write every output as DIR/NAME.npy (DIR is created)\n"
    "  --weights FILE     read params from FILE instead of the model's 'weights'\n"
    "                     file (which is found relative to the model file)\n"
    "  --random-inputs    make every input not given with --input: floats uniform\n"
    "                     in [-1,1), gather indices in range, other ints in [0,10)\n"
    "  --random-weights   make every param instead of reading a weights file\n"
    "  --seed N           seed for the random values (default 0)\n"
    "  --bind DIM=VALUE   the value of a dim for random inputs; otherwise a dim\n"
    "                     takes its size from the inputs given, else its <= bound,\n"
    "                     else 8\n"
    "  --device DEV       where to run (default auto):\n"
    "                       cpu   kernels compiled for this CPU (LLVM JIT, all cores;\n"
    "                             compiled kernels are cached in $DSC_CACHE_DIR, else\n"
    "                             $XDG_CACHE_HOME/dsc or ~/.cache/dsc; DSC_CACHE=0\n"
    "                             turns the cache off; DSC_THREADS=N sets the threads)\n"
    "                       cuda  the GPU: kernels compiled by NVRTC for its exact architecture\n"
    "                             (cached like cpu); needs the CUDA driver (libcuda.so.1)\n"
    "                       ref   the reference interpreter (slow, the oracle)\n"
    "                       auto  the GPU if usable, else cpu; without LLVM in the\n"
    "                             build, ref with a warning\n"
    "  -O0, -O1, -O2      optimization level, as for 'dsc compile' (.dsg only)\n"
    "  --disable-pass=NAME  skip one pass, as for 'dsc compile' (.dsg only)\n"
    "  --precision=P      f32 (default), f16, bf16 or int8, as for 'dsc compile'\n"
    "                     (.dsg only; no accuracy guard)\n"
    "  --sparsity=S, --sparse-block=RxC  block pruning, as for 'dsc compile' (.dsg\n"
    "                     only; a .dsm keeps the pruning it was compiled with)\n"
    "  --gemm=TACTIC      the GPU's GEMM kernels (cuda only; default $DSC_GEMM, else\n"
    "                     generated): generated (dsc's own), cublas (every kernel that\n"
    "                     is exactly one GEMM, optionally + a bias vector, then\n"
    "                     optionally relu or gelu_tanh, runs through cuBLASLt; an\n"
    "                     error without libcublasLt), auto (the same where\n"
    "                     libcublasLt loads)\n"
    "  --baseline=cublas  the cuBLAS + unfused kernels baseline: the fuse pass off\n"
    "                     and --gemm=cublas, on the GPU (.dsg only)\n"
    "  -h, --help         show this help\n";

static const char usage_bench[] =
    "usage: dsc bench FILE [--device auto|cpu|ref] [--iters N] [--warmup N]\n"
    "                 [--bind DIM=VALUE[,DIM=VALUE]...]... [--seed N]\n"
    "                 [--input NAME=FILE.npy]... [--weights FILE] [--output-dir DIR]\n"
    "                 [-O0|-O1|-O2] [--disable-pass=NAME]... [--no-cache]\n"
    "                 [--profile] [--json] [--sparsity=S] [--sparse-block=RxC]\n"
    "                 [--precision=f32|f16|bf16|int8]\n"
    "\n"
    "Times the model.  Everything is prepared once: the inputs and weights and,\n"
    "for cpu, the lowering and JIT compilation (timed and reported apart); then\n"
    "the model runs --warmup times untimed and --iters times timed on the same\n"
    "data.  Prints the median, min, mean and max latency, the throughput\n"
    "(inferences per second) and, from the kernels' estimates, GFLOP/s.  One\n"
    "timed run is what 'dsc run' does per inference: bind the dims, run every\n"
    "kernel, copy the outputs out.  FILE is DSG source or a compiled model (.dsm,\n"
    "told apart by content), whose own weights are used unless --weights is given;\n"
    "-O, --disable-pass, --precision and --sparsity apply to DSG source only.\n"
    "\n"
    "options:\n"
    "  --device DEV       where to run (default auto): cpu (the host JIT; threads:\n"
    "                     $DSC_THREADS, else every core), ref (the reference\n"
    "                     interpreter), auto (cpu, else ref with a warning)\n"
    "  --iters N          timed runs (default 20)\n"
    "  --warmup N         untimed runs before them (default 3)\n"
    "  --bind DIM=VALUE   the value of a dim for the random inputs (repeatable or\n"
    "                     comma-separated); otherwise its <= bound, else 8\n"
    "  --seed N           seed for the random inputs and weights (default 0)\n"
    "  --input NAME=FILE  the input NAME from a .npy file; the others are random\n"
    "  --weights FILE     read the params from FILE; otherwise they are random (for\n"
    "                     a .dsm: its own)\n"
    "  --output-dir DIR   write the outputs of the last run as DIR/NAME.npy\n"
    "  -O0, -O1, -O2      optimization level, as for 'dsc compile'\n"
    "  --disable-pass=NAME  skip one pass, as for 'dsc compile'\n"
    "  --sparsity=S, --sparse-block=RxC  block pruning, as for 'dsc compile'\n"
    "  --precision=P      f32 (default), f16, bf16 or int8, as for 'dsc compile'\n"
    "                     (no accuracy guard)\n"
    "  --no-cache         compile every kernel (no disk cache): the cold compile time\n"
    "  --profile          per kernel (cpu only): median time per inference, share,\n"
    "                     GFLOP/s and GB/s from the kernel's estimates, and the\n"
    "                     time spent outside the kernels\n"
    "  --json             print one JSON object instead, with the keys model, file,\n"
    "                     device, target, threads, dims, iters, warmup, load_ms,\n"
    "                     data_ms, compile_ms, first_ms, median_ms, min_ms, mean_ms,\n"
    "                     max_ms, throughput_per_s, flops, gflops_per_s, bytes,\n"
    "                     kernels, kernels_compiled, kernels_cached, samples_ms (and\n"
    "                     with --profile: profile, profile_other_ms)\n"
    "  -h, --help         show this help\n";

static const char usage_inspect[] =
    "usage: dsc inspect FILE.dsm [--json] [--kernel-ir]\n"
    "\n"
    "Checks a compiled model (dsc compile -o FILE.dsm) completely -- container,\n"
    "format version, checksum, graph, weights -- and prints its format and dsc\n"
    "version, model, checksum status, dims, inputs and outputs with their shapes,\n"
    "a weights summary (tensors and bytes per dtype, total; the pruned params\n"
    "stored block-compressed and the bytes that saves), the kernels (name,\n"
    "fusion group, kind), the memory plan and the optimized graph (DSG).  A damaged\n"
    "or foreign file is an error (exit status 1) saying what is wrong.\n"
    "\n"
    "options:\n"
    "  --json             one JSON object instead (keys in docs/formats.md)\n"
    "  --kernel-ir        also print the stored kernel IR\n"
    "  -h, --help         show this help\n";

static const char usage_prune[] =
    "usage: dsc prune FILE -o OUT.safetensors [--weights FILE] [--random-weights]\n"
    "                 [--seed N] [--sparsity=S] [--sparse-block=RxC]\n"
    "\n"
    "Reads the model's weights, prunes every param with a @sparse hint (and, with\n"
    "--sparsity, every GEMM weight) by the block rule of docs/sparsity.md, and\n"
    "writes all the params -- pruned or not, under their keys in the weights\n"
    "file -- to OUT.  OUT appears only when completely written.  The model is\n"
    "not optimized first, so the params are the ones the model declares.\n"
    "\n"
    "options:\n"
    "  -o OUT             the safetensors file to write\n"
    "  --weights FILE     read params from FILE instead of the model's 'weights' file\n"
    "  --random-weights   make every param (seeded) instead of reading a file\n"
    "  --seed N           seed for --random-weights (default 0)\n"
    "  --sparsity=S, --sparse-block=RxC  as for 'dsc compile'\n"
    "  -h, --help         show this help\n";

static const char usage_calibrate[] =
    "usage: dsc calibrate FILE --data DIR [--percentile P] [--weights FILE]\n"
    "                     [-O1|-O2] [--disable-pass=NAME]...\n"
    "\n"
    "Runs the model in f32 on every input set of DIR and prints, for every GEMM\n"
    "that --precision may lower (docs/precision.md), the range of its input (the largest\n"
    "|x|, or a percentile of |x|, over all sets) and the static scale range/127\n"
    "that 'dsc compile --precision=int8 --calibrate DIR' uses.  Sets are\n"
    "DIR/SET/INPUT.npy, one file per model input (or DIR/INPUT.npy: one set).\n"
    "\n"
    "options:\n"
    "  --data DIR         the input sets (required)\n"
    "  --percentile P     the range is this percentile of |x| (default 100: min-max)\n"
    "  --weights FILE     the weights (default: seeded random weights)\n"
    "  -O1, -O2           optimization level, as for 'dsc compile' (default -O2)\n"
    "  --disable-pass=NAME  skip one pass, as for 'dsc compile'\n"
    "  -h, --help         show this help\n";

static const char usage_passes[] =
    "usage: dsc passes\n"
    "\n"
    "Lists the optimization passes in pipeline order with the lowest -O level\n"
    "that runs each.\n";

static const char usage_hwdb[] =
    "usage: dsc hwdb [--arch ARCH] [--cc MAJOR.MINOR [--name NAME] [--sms N]] [--db FILE]\n"
    "\n"
    "Without options: lists the hardware-characteristics database, one line per\n"
    "entry (arch, family, SM range, memory bandwidth, peak f16 and f32 TFLOP/s),\n"
    "then shows which entry each GPU of this machine selects and why (exact\n"
    "device name, else the same compute capability, else the nearest lower one),\n"
    "or, without a CUDA driver, the host entry.\n"
    "\n"
    "The database is $DSC_HWDB if set, else share/dsc/hwdb.json installed beside\n"
    "the executable (<exe dir>/../share/dsc/hwdb.json), else data/hwdb.json of\n"
    "the source tree holding the build directory (<exe dir>/../data/hwdb.json).\n"
    "\n"
    "options:\n"
    "  --arch ARCH        show one entry in full (sm_90, 90, 9.0 or host)\n"
    "  --cc MAJOR.MINOR   show what a GPU of this compute capability selects\n"
    "  --name NAME        with --cc: the device name as the driver reports it\n"
    "  --sms N            with --cc: the device's SM count\n"
    "  --db FILE          read FILE instead of the database found as above\n"
    "  -h, --help         show this help\n";

static int usage_error(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

static bool is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

/* Matches "--name=value" or "--name value"; advances *i for the latter. */
static const char *option_value(int argc, char **argv, int *i, const char *name) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] == 0 && *i + 1 < argc) return argv[++*i];
    return NULL;
}

/* --sparsity=S / --sparse-block=RxC into so: 0 not one of them, 1 taken,
 * -1 a bad value (reported with `usage`). */
static int sparse_option(int argc, char **argv, int *i, SparsifyOptions *so, const char *usage) {
    const char *v;
    if ((v = option_value(argc, argv, i, "--sparsity"))) {
        char *end;
        double x = strtod(v, &end);
        if (end == v || *end || !(x >= 0 && x <= 1)) {
            usage_error(usage, "--sparsity needs a fraction of blocks to remove in [0, 1], got '%s'", v);
            return -1;
        }
        so->have_sparsity = true;
        so->sparsity = x;
        return 1;
    }
    if ((v = option_value(argc, argv, i, "--sparse-block"))) {
        if (!pass_sparsify_parse_block(v, &so->br, &so->bc)) {
            usage_error(usage, "--sparse-block needs RxC with positive integers up to 4096, e.g. 16x16, got '%s'", v);
            return -1;
        }
        so->have_block = true;
        return 1;
    }
    return 0;
}

/* Parses and type-checks a file; prints diagnostics.  NULL on error. */
static Graph *load(Arena *a, Diag *d, const char *path) {
    Graph *g = NULL;
    if (rt_dsm_is(path))
        diag_error(d, loc_file(path),
                   "this is a compiled model (.dsm), not DSG source: 'dsc inspect' shows it, "
                   "'dsc run' and 'dsc bench' run it");
    else
        g = fe_compile_file(a, d, path);
    diag_print(d, stderr, true);
    diag_clear(d);
    return g;
}

/* DSG source, or a compiled model (checked; *dsm filled): told apart by
 * content, or by the .dsm extension for a file too damaged to tell. */
static Graph *load_model(Arena *a, Diag *d, const char *path, RtDsm *dsm) {
    size_t n = strlen(path);
    if (!rt_dsm_is(path) && !(n > 4 && strcmp(path + n - 4, ".dsm") == 0)) return load(a, d, path);
    bool ok = rt_dsm_open(path, a, dsm, d);
    diag_print(d, stderr, true);
    diag_clear(d);
    return ok ? dsm->graph : NULL;
}

/* Pass options (-O, --disable-pass, --precision, sparsity) with a compiled model: a usage error. */
static bool passes_for_dsm(const RtDsm *dsm, bool given, const char *file, const char *usage) {
    if (!dsm->graph || !given) return false;
    usage_error(usage,
                "-O, --disable-pass, --precision, --sparsity and --sparse-block apply to DSG source; "
                "'%s' is a compiled model (already optimized)",
                file);
    return true;
}

static int cmd_check(int argc, char **argv) {
    const char *file = NULL;
    bool verbose = false;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_check, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            verbose = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error(usage_check, "unknown option '%s'", argv[i]);
        } else if (file) {
            return usage_error(usage_check, "more than one file given ('%s')", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!file) return usage_error(usage_check, "%s", "no input file");
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = load(a, d, file);
    if (g && verbose) {
        printf("%s: ok: model %s, %d operations, %d outputs\n", file, g->name, ir_count_ops(g), g->noutputs);
    }
    diag_destroy(d);
    arena_destroy(a);
    return g ? EXIT_OK : EXIT_DIAG;
}

typedef enum { EMIT_DSG, EMIT_DOT, EMIT_CUDA, EMIT_CUBIN, EMIT_DSM } Emit;

typedef struct {
    const char *dir;
    const char *before, *after; /* pass name, "all" or NULL */
    Diag *d;
    bool failed;
} Dumps;

static bool dump_selected(const char *which, const PassInfo *p) {
    return which && (strcmp(which, "all") == 0 || strcmp(which, p->name) == 0);
}

static void write_dump(Dumps *dm, int index, const PassInfo *p, const Graph *g, const char *when) {
    char *path = NULL;
    if (asprintf(&path, "%s/%02d-%s-%s.dsg", dm->dir, index, when, p->name) < 0) return;
    AtomicFile af;
    FILE *f = af_open(&af, path, dm->d);
    if (f) {
        fprintf(f, "# dsc %s: graph %s pass %d '%s'\n", dsc_version(), when, index, p->name);
        ir_print_dsg(g, f);
        if (!af_commit(&af, dm->d)) dm->failed = true;
    } else {
        dm->failed = true;
    }
    free(path);
}

static void dump_before(void *ctx, int index, const PassInfo *p, const Graph *g) {
    Dumps *dm = ctx;
    if (dump_selected(dm->before, p)) write_dump(dm, index, p, g, "before");
}

static void dump_after(void *ctx, int index, const PassInfo *p, const Graph *g) {
    Dumps *dm = ctx;
    if (dump_selected(dm->after, p)) write_dump(dm, index, p, g, "after");
}

/* Binding of dim values from --bind (NAME=VALUE, comma-separated lists). */
typedef struct {
    int n;
    char *names[64];
    int64_t values[64];
} Binds;

static bool parse_i64(const char *s, int64_t *out);

static bool add_binds(Binds *b, char *arg) {
    for (char *item = strtok(arg, ","); item; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || b->n == 64) return false;
        *eq = 0;
        if (!parse_i64(eq + 1, &b->values[b->n]) || b->values[b->n] < 0) return false;
        b->names[b->n++] = item;
    }
    return true;
}

/* Values for every dim symbol: --bind, else the bound, else RT_DEFAULT_DIM.
 * Reports a --bind of an unknown dim. */
static int64_t *bind_dims(const Graph *g, const Binds *b, Diag *d) {
    int n = dim_sym_count(g->dims);
    int64_t *syms = calloc((size_t)n + 1, sizeof(int64_t));
    for (int s = 0; s < n; s++) {
        int64_t bound = dim_sym_bound(g->dims, s);
        syms[s] = bound > 0 ? bound : RT_DEFAULT_DIM;
    }
    for (int i = 0; i < b->n; i++) {
        int s = dim_sym_lookup(g->dims, b->names[i]);
        if (s < 0) {
            diag_error(d, loc_file(g->file), "--bind: model '%s' has no dim '%s'", g->name, b->names[i]);
            free(syms);
            return NULL;
        }
        syms[s] = b->values[i];
    }
    return syms;
}

static void print_stats(FILE *out, bool json, const Graph *g, const int64_t *syms, const GraphStats *st,
                        const PipelineOptions *po) {
    int nsyms = dim_sym_count(g->dims);
    RtSparseLayer layers[64];
    int nlayers = rt_sparse_layers(g, layers, 64);
    if (json) {
        cJSON *o = cJSON_CreateObject(), *dims = cJSON_AddObjectToObject(o, "dims");
        for (int s = 0; s < nsyms; s++) cJSON_AddNumberToObject(dims, dim_sym_name(g->dims, s), (double)syms[s]);
        cJSON_AddNumberToObject(o, "ops", st->ops);
        cJSON_AddNumberToObject(o, "kernels", st->kernels);
        cJSON_AddNumberToObject(o, "bytes_unfused", st->bytes_unfused);
        cJSON_AddNumberToObject(o, "bytes_fused", st->bytes_fused);
        cJSON_AddNumberToObject(o, "weight_bytes", st->weight_bytes);
        cJSON *wd = cJSON_AddObjectToObject(o, "weight_bytes_by_dtype");
        for (int t = 0; t < DT_COUNT; t++)
            if (st->weight_bytes_by_dtype[t] > 0)
                cJSON_AddNumberToObject(wd, dtype_name((DType)t), st->weight_bytes_by_dtype[t]);
        cJSON_AddNumberToObject(o, "peak_bytes_planned", st->peak_bytes_planned);
        cJSON_AddNumberToObject(o, "peak_bytes_naive", st->peak_bytes_naive);
        cJSON_AddNumberToObject(o, "gemm_weight_params", st->gemm_weight_params);
        cJSON_AddNumberToObject(o, "gemm_weight_params_kept", st->gemm_weight_params_kept);
        cJSON_AddNumberToObject(o, "sparse_bytes_saved", st->sparse_bytes_saved);
        cJSON *sl = cJSON_AddArrayToObject(o, "sparse_layers");
        for (int i = 0; i < nlayers; i++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "param", layers[i].name);
            cJSON_AddStringToObject(l, "block", arena_printf(g->arena, "%dx%d", layers[i].br, layers[i].bc));
            cJSON_AddNumberToObject(l, "density", layers[i].density);
            cJSON_AddNumberToObject(l, "params", layers[i].params);
            cJSON_AddNumberToObject(l, "kept", layers[i].kept);
            cJSON_AddNumberToObject(l, "dense_us_per_row", layers[i].dense_us);
            cJSON_AddNumberToObject(l, "sparse_us_per_row", layers[i].sparse_us);
            cJSON_AddStringToObject(l, "kernel", layers[i].sparse ? "sparse" : "dense");
            cJSON_AddItemToArray(sl, l);
        }
        cJSON *passes = cJSON_AddArrayToObject(o, "passes");
        for (int i = 0; i < po->nrecords; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "name", po->records[i].pass->name);
            cJSON_AddNumberToObject(p, "ms", po->records[i].ms);
            cJSON_AddNumberToObject(p, "ops_before", po->records[i].ops_before);
            cJSON_AddNumberToObject(p, "ops_after", po->records[i].ops_after);
            cJSON_AddItemToArray(passes, p);
        }
        char *text = cJSON_PrintUnformatted(o);
        fprintf(out, "%s\n", text);
        free(text);
        cJSON_Delete(o);
        return;
    }
    fprintf(out, "%-16s %9s %6s %6s\n", "pass", "ms", "ops", "after");
    for (int i = 0; i < po->nrecords; i++)
        fprintf(out, "%-16s %9.3f %6d %6d\n", po->records[i].pass->name, po->records[i].ms, po->records[i].ops_before,
                po->records[i].ops_after);
    fprintf(out, "result for");
    for (int s = 0; s < nsyms; s++) fprintf(out, " %s=%lld", dim_sym_name(g->dims, s), (long long)syms[s]);
    fprintf(out, ":\n");
    double ops = st->ops ? st->ops : 1, un = st->bytes_unfused ? st->bytes_unfused : 1,
           naive = st->peak_bytes_naive ? st->peak_bytes_naive : 1;
    fprintf(out, "  ops             %d\n", st->ops);
    fprintf(out, "  kernels         %d (%.2f of ops)%s\n", st->kernels, st->kernels / ops,
            st->fused ? "" : " [no fusion ran]");
    fprintf(out, "  bytes moved     unfused %.0f, fused %.0f (%.2f) [activations; weights: %.0f either way]\n",
            st->bytes_unfused, st->bytes_fused, st->bytes_fused / un, st->weight_bytes);
    fprintf(out, "  weights         %.0f bytes as stored (", st->weight_bytes);
    for (int t = 0, first = 1; t < DT_COUNT; t++)
        if (st->weight_bytes_by_dtype[t] > 0) {
            fprintf(out, "%s%s %.0f", first ? "" : ", ", dtype_name((DType)t), st->weight_bytes_by_dtype[t]);
            first = 0;
        }
    fprintf(out, ")\n");
    fprintf(out, "  peak memory     naive %.0f, planned %.0f (%.2f)%s\n", st->peak_bytes_naive,
            st->peak_bytes_planned, st->peak_bytes_planned / naive, st->planned ? "" : " [no memory plan]");
    if (st->gemm_weight_params > 0)
        fprintf(out, "  gemm weights    %.0f params, %.0f kept (%.2f), block-compressed form saves %.0f bytes\n",
                st->gemm_weight_params, st->gemm_weight_params_kept,
                st->gemm_weight_params_kept / st->gemm_weight_params, st->sparse_bytes_saved);
    for (int i = 0; i < nlayers; i++)
        fprintf(out, "  sparse          %s: block %dx%d, density %.4g; estimate per row dense %.3g us, sparse %.3g us: %s\n",
                layers[i].name, layers[i].br, layers[i].bc, layers[i].density, layers[i].dense_us, layers[i].sparse_us,
                layers[i].sparse ? "sparse kernel" : "dense kernel");
}

static bool check_pass_name(const char *name, const char *option) {
    if (strcmp(name, "all") == 0 || pass_find(name)) return true;
    fprintf(stderr, "%s: %s: unknown pass '%s'; passes:", prog, option, name);
    for (int i = 0; i < pass_count(); i++) fprintf(stderr, " %s", pass_get(i)->name);
    fprintf(stderr, "\n");
    return false;
}

/* --precision=f32|f16|bf16|int8 */
static bool parse_precision(const char *v, DType *out, const char *usage) {
    if (pass_precision_from_name(v, out)) return true;
    usage_error(usage, "--precision must be f32, f16, bf16 or int8, got '%s'", v);
    return false;
}

/* Attaches the --precision request to a loaded graph (nothing for f32). */
static void request_precision(Arena *a, Graph *g, DType prec) {
    if (!g || prec == DT_F32) return;
    g->precision = arena_alloc(a, sizeof(PrecisionRequest));
    g->precision->dtype = prec;
}

/* --precision on compile: calibration and the accuracy guard. */
typedef struct {
    DType prec;
    double max_err; /* --max-rel-error; <0: the default for the precision */
    bool guard;
    const char *weights; /* --weights: for calibration and the guard */
    const char *calib;   /* --calibrate DIR */
    double percentile;   /* --calibrate-percentile (100: min-max) */
} PrecOptions;

/* Before compiling at a lower precision: with --calibrate, static int8
 * activation scales from the f32 model on the calibration sets; then the
 * accuracy guard on the first calibration set, else on seeded random inputs
 * (dims from --bind), with the --weights file or seeded random weights, pruned
 * as --sparsity / --sparse-block and @sparse say.
 * Prints the guard's table to stderr and stores the scales and the ops moved
 * back to f32 in g->precision.  False (diagnostics printed) on error or when
 * even f32 everywhere misses the budget (non-finite outputs). */
static bool prepare_precision(const char *file, Graph *g, const PrecOptions *p, const Binds *binds, int opt,
                              const char **disabled, int ndisabled, const SparsifyOptions *so, Diag *d) {
    RunOptions run = {.random_inputs = true,
                      .random_weights = !p->weights,
                      .weights = p->weights,
                      .nbinds = binds->n,
                      .bind_names = (const char *const *)binds->names,
                      .bind_values = binds->values,
                      .device = rt_host_available() ? RT_DEVICE_CPU : RT_DEVICE_REF};
    CalibSets sets = {0};
    bool ok = !p->calib || rt_calib_sets(p->calib, &sets, d);
    if (ok && p->calib && p->prec == DT_I8) {
        CalibOptions co = {.sets = &sets,
                           .percentile = p->percentile,
                           .opt_level = opt,
                           .disabled = disabled,
                           .ndisabled = ndisabled,
                           .sparse = so,
                           .run = run};
        double *absmax = arena_alloc(g->arena, sizeof(double) * PREC_MAX_CAND);
        int n;
        ok = rt_calibrate(file, &co, absmax, &n, NULL, d);
        g->precision->act_absmax = absmax;
        g->precision->nabsmax = n;
        if (ok)
            fprintf(stderr, "calibration: %d input set%s from %s, %s, %d ops\n", sets.n,
                    sets.n == 1 ? "" : "s", p->calib, p->percentile < 100 ? "percentile" : "min-max", n);
    }
    if (ok && p->calib) rt_calib_set_inputs(&sets, 0, &run);
    GuardResult *r = calloc(1, sizeof *r);
    GuardOptions go = {.dtype = p->prec,
                       .budget = p->max_err >= 0    ? p->max_err
                                 : p->prec == DT_I8 ? 2e-2
                                                    : 2e-3,
                       .opt_level = opt,
                       .disabled = disabled,
                       .ndisabled = ndisabled,
                       .sparse = so,
                       .report = stderr,
                       .run = run,
                       .act_absmax = g->precision->act_absmax,
                       .nabsmax = g->precision->nabsmax};
    if (ok && p->guard) {
        ok = rt_precision_guard(file, &go, r, d);
        if (ok && !r->met)
            diag_error(
                d, loc_file(file),
                "--precision=%s: the output error is %.3g (budget %.3g) even in f32: are the outputs finite?",
                pass_precision_name(p->prec), r->error_final, go.budget);
        if (ok && r->met) {
            bool *keep = arena_alloc(g->arena, sizeof(bool) * PREC_MAX_CAND);
            memcpy(keep, r->keep, sizeof(bool) * PREC_MAX_CAND);
            g->precision->keep_f32 = keep;
            g->precision->nkeep = PREC_MAX_CAND;
        }
        ok = ok && r->met;
    }
    free(r);
    rt_calib_sets_free(&sets);
    diag_print(d, stderr, true);
    diag_clear(d);
    return ok;
}

static int cmd_compile(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *v;
    Emit emit = EMIT_DSG;
    bool emit_given = false;
    RunOptions wo = {0}; /* weights for --emit=dsm */
    bool weights_given = false;
    int target = 0; /* --target=sm_XX */
    Dumps dm = {.dir = "."};
    Binds binds = {0};
    int stats = 0; /* 0 none, 1 text, 2 json */
    PrecOptions po_prec = {.prec = DT_F32, .max_err = -1, .guard = true, .percentile = 100};
    const char **disabled = calloc((size_t)argc + 1, sizeof(char *));
    int ndisabled = 0, opt = 2, rc = EXIT_USAGE, sr;
    SparsifyOptions so = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(usage_compile, stdout);
            rc = EXIT_OK;
            goto done;
        } else if ((sr = sparse_option(argc, argv, &i, &so, usage_compile))) {
            if (sr < 0) goto done;
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) {
                rc = usage_error(usage_compile, "%s", "-o needs a file name");
                goto done;
            }
            out = argv[++i];
        } else if ((v = option_value(argc, argv, &i, "--emit"))) {
            if (strcmp(v, "dsg") == 0) {
                emit = EMIT_DSG;
            } else if (strcmp(v, "dot") == 0) {
                emit = EMIT_DOT;
            } else if (strcmp(v, "cuda") == 0) {
                emit = EMIT_CUDA;
            } else if (strcmp(v, "cubin") == 0) {
                emit = EMIT_CUBIN;
            } else if (strcmp(v, "dsm") == 0) {
                emit = EMIT_DSM;
            } else {
                rc = usage_error(usage_compile,
                                 "unknown --emit kind '%s' (expected dsg, dot, cuda, cubin or dsm)", v);
                goto done;
            }
            emit_given = true;
        } else if ((v = option_value(argc, argv, &i, "--weights"))) {
            wo.weights = po_prec.weights = v; /* the compiled model's weights, and the guard's */
        } else if (strcmp(a, "--random-weights") == 0) {
            wo.random_weights = weights_given = true;
        } else if ((v = option_value(argc, argv, &i, "--seed"))) {
            int64_t seed;
            if (!parse_i64(v, &seed)) {
                rc = usage_error(usage_compile, "--seed needs an integer, got '%s'", v);
                goto done;
            }
            wo.seed = (uint64_t)seed;
            weights_given = true;
        } else if ((v = option_value(argc, argv, &i, "--target"))) {
            if ((target = rt_nvrtc_parse_arch(v)) < 0) {
                rc = usage_error(usage_compile, "--target needs a GPU architecture like sm_90, got '%s'", v);
                goto done;
            }
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) {
            opt = a[2] - '0';
        } else if ((v = option_value(argc, argv, &i, "--disable-pass"))) {
            if (!check_pass_name(v, "--disable-pass")) goto done;
            disabled[ndisabled++] = v;
        } else if ((v = option_value(argc, argv, &i, "--dump-before"))) {
            if (!check_pass_name(v, "--dump-before")) goto done;
            dm.before = v;
        } else if ((v = option_value(argc, argv, &i, "--dump-after"))) {
            if (!check_pass_name(v, "--dump-after")) goto done;
            dm.after = v;
        } else if ((v = option_value(argc, argv, &i, "--dump-dir"))) {
            dm.dir = v;
        } else if ((v = option_value(argc, argv, &i, "--precision"))) {
            if (!parse_precision(v, &po_prec.prec, usage_compile)) goto done;
        } else if ((v = option_value(argc, argv, &i, "--max-rel-error"))) {
            char *end;
            po_prec.max_err = strtod(v, &end);
            if (end == v || *end || !(po_prec.max_err >= 0)) {
                rc = usage_error(usage_compile, "--max-rel-error needs a non-negative number, got '%s'", v);
                goto done;
            }
        } else if ((v = option_value(argc, argv, &i, "--calibrate-percentile"))) {
            char *end;
            po_prec.percentile = strtod(v, &end);
            if (end == v || *end || !(po_prec.percentile > 0 && po_prec.percentile <= 100)) {
                rc = usage_error(usage_compile, "--calibrate-percentile needs a number in (0, 100], got '%s'",
                                 v);
                goto done;
            }
        } else if ((v = option_value(argc, argv, &i, "--calibrate"))) {
            po_prec.calib = v;
        } else if (strcmp(a, "--no-guard") == 0) {
            po_prec.guard = false;
        } else if (strcmp(a, "--stats") == 0 || strcmp(a, "--stats=text") == 0) {
            stats = 1;
        } else if (strcmp(a, "--stats=json") == 0) {
            stats = 2;
        } else if ((v = option_value(argc, argv, &i, "--bind"))) {
            if (!add_binds(&binds, (char *)v)) {
                rc = usage_error(usage_compile, "--bind needs DIM=VALUE[,DIM=VALUE...] with non-negative integers, got '%s'", v);
                goto done;
            }
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error(usage_compile, "unknown option '%s'", a);
            goto done;
        } else if (file) {
            rc = usage_error(usage_compile, "more than one file given ('%s')", a);
            goto done;
        } else {
            file = a;
        }
    }
    if (!file) {
        rc = usage_error(usage_compile, "%s", "no input file");
        goto done;
    }
    size_t outlen = out ? strlen(out) : 0;
    if (!emit_given && outlen > 4 && strcmp(out + outlen - 4, ".dsm") == 0) emit = EMIT_DSM;
    if (emit == EMIT_DSM && (!out || strcmp(out, "-") == 0)) {
        rc = usage_error(usage_compile, "%s", "--emit=dsm needs -o FILE (a compiled model is binary)");
        goto done;
    }
    if (weights_given && emit != EMIT_DSM) {
        rc = usage_error(usage_compile, "%s",
                         "--random-weights and --seed apply to --emit=dsm (-o FILE.dsm)");
        goto done;
    }
    if (wo.weights && emit != EMIT_DSM && po_prec.prec == DT_F32) {
        rc = usage_error(usage_compile, "%s", "--weights applies to --emit=dsm (-o FILE.dsm) and --precision");
        goto done;
    }
    if (wo.weights && wo.random_weights) {
        rc = usage_error(usage_compile, "%s", "--weights and --random-weights exclude each other");
        goto done;
    }
    if (po_prec.calib && po_prec.prec == DT_F32) {
        rc = usage_error(usage_compile, "%s", "--calibrate applies with --precision=int8, f16 or bf16");
        goto done;
    }
    if (po_prec.prec != DT_F32 && opt == 0) {
        rc = usage_error(usage_compile, "%s", "--precision needs -O1 or -O2 (-O0 runs no passes)");
        goto done;
    }
    bool kernels = emit == EMIT_CUDA || emit == EMIT_CUBIN;
    if (kernels && (!out || strcmp(out, "-") == 0)) {
        rc = usage_error(usage_compile, "%s", "--emit=cuda and --emit=cubin need -o DIR");
        goto done;
    }
    if (target && !kernels) {
        rc = usage_error(usage_compile, "%s", "--target applies to --emit=cuda and --emit=cubin");
        goto done;
    }
    if ((dm.before || dm.after) && mkdir(dm.dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create dump directory '%s': %s\n", prog, dm.dir, strerror(errno));
        rc = EXIT_DIAG;
        goto done;
    }
    Arena *arena = arena_create();
    Diag *d = diag_create();
    dm.d = d;
    rc = EXIT_DIAG;
    Graph *g = load(arena, d, file);
    request_precision(arena, g, po_prec.prec);
    if (g && g->precision && !prepare_precision(file, g, &po_prec, &binds, opt, disabled, ndisabled, &so, d))
        g = NULL;
    if (g) {
        PassRecord *records = calloc((size_t)pass_count() + 1, sizeof(PassRecord));
        PipelineOptions po = {opt, disabled, ndisabled, dump_before, dump_after, &dm, records, 0, &so};
        bool ok = pass_run_pipeline(g, d, &po) && !dm.failed;
        bool to_stdout = !out || strcmp(out, "-") == 0;
        if (ok && stats) {
            int64_t *syms = bind_dims(g, &binds, d);
            GraphStats st;
            ok = syms && pass_graph_stats(g, syms, &st, d);
            if (ok) print_stats(to_stdout ? stderr : stdout, stats == 2, g, syms, &st, &po);
            free(syms);
        }
        free(records);
        if (ok && emit == EMIT_DSM) {
            wo.nbinds = binds.n;
            wo.bind_names = (const char *const *)binds.names;
            wo.bind_values = binds.values;
            /* a copy as written, for choosing random weight ranges (as dsc run does) */
            wo.as_written = wo.random_weights ? fe_compile_file(arena, d, file) : NULL;
            if (rt_dsm_write(g, file, &wo, out, d)) rc = EXIT_OK;
        } else if (ok && kernels) {
            CudaEmitOptions eo = {.cubin = emit == EMIT_CUBIN, .sm = target, .dir = out, .report = stdout};
            if (rt_cuda_emit(g, &eo, d)) rc = EXIT_OK;
        } else if (ok) {
            AtomicFile af;
            FILE *f = to_stdout ? stdout : af_open(&af, out, d);
            if (f) {
                if (emit == EMIT_DOT)
                    ir_print_dot(g, f);
                else
                    ir_print_dsg(g, f);
                if (to_stdout ? fflush(stdout) == 0 : af_commit(&af, d)) rc = EXIT_OK;
            }
        }
        diag_print(d, stderr, true);
    }
    diag_destroy(d);
    arena_destroy(arena);
done:
    free(disabled);
    return rc;
}

/* Splits "NAME=VALUE"; false if there is no '=' or either side is empty. */
static bool split_eq(char *arg, char **name, char **value) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return false;
    *eq = 0;
    *name = arg;
    *value = eq + 1;
    return true;
}

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static int cmd_run(int argc, char **argv) {
    DType prec = DT_F32;
    const char *file = NULL, *v;
    char **names = calloc((size_t)argc + 1, sizeof(char *)), **files = calloc((size_t)argc + 1, sizeof(char *));
    char **bnames = calloc((size_t)argc + 1, sizeof(char *));
    int64_t *bvalues = calloc((size_t)argc + 1, sizeof(int64_t));
    RunOptions ro = {.summary = stdout, .device = RT_DEVICE_AUTO};
    const char **disabled = calloc((size_t)argc + 1, sizeof(char *));
    int opt = 2, rc = EXIT_USAGE, ndisabled = 0, sr;
    bool passopts = false; /* -O, --disable-pass, --precision or a sparsity option given */
    bool baseline = false, device_given = false;
    SparsifyOptions so = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *n, *val;
        if (is_help(a)) {
            fputs(usage_run, stdout);
            rc = EXIT_OK;
            goto done;
        } else if ((sr = sparse_option(argc, argv, &i, &so, usage_run))) {
            if (sr < 0) goto done;
            passopts = true;
        } else if ((v = option_value(argc, argv, &i, "--input"))) {
            if (!split_eq((char *)v, &n, &val)) {
                rc = usage_error(usage_run, "--input needs NAME=FILE, got '%s'", v);
                goto done;
            }
            names[ro.ninputs] = n;
            files[ro.ninputs++] = val;
        } else if ((v = option_value(argc, argv, &i, "--bind"))) {
            if (!split_eq((char *)v, &n, &val) || !parse_i64(val, &bvalues[ro.nbinds]) || bvalues[ro.nbinds] < 0) {
                rc = usage_error(usage_run, "--bind needs DIM=VALUE with a non-negative integer, got '%s'", v);
                goto done;
            }
            bnames[ro.nbinds++] = n;
        } else if ((v = option_value(argc, argv, &i, "--output-dir"))) {
            ro.output_dir = v;
        } else if ((v = option_value(argc, argv, &i, "--weights"))) {
            ro.weights = v;
        } else if ((v = option_value(argc, argv, &i, "--seed"))) {
            int64_t seed;
            if (!parse_i64(v, &seed)) {
                rc = usage_error(usage_run, "--seed needs an integer, got '%s'", v);
                goto done;
            }
            ro.seed = (uint64_t)seed;
        } else if ((v = option_value(argc, argv, &i, "--precision"))) {
            if (!parse_precision(v, &prec, usage_run)) goto done;
            passopts = true;
        } else if ((v = option_value(argc, argv, &i, "--device"))) {
            if (!rt_device_from_name(v, &ro.device)) {
                rc = usage_error(usage_run, "--device must be auto, cpu, cuda or ref, got '%s'", v);
                goto done;
            }
            device_given = true;
        } else if ((v = option_value(argc, argv, &i, "--gemm"))) {
            if (!rt_cuda_gemm_from_name(v, &ro.gemm)) {
                rc = usage_error(usage_run, "--gemm must be auto, generated or cublas, got '%s'", v);
                goto done;
            }
        } else if ((v = option_value(argc, argv, &i, "--baseline"))) {
            if (strcmp(v, "cublas") != 0) {
                rc = usage_error(usage_run, "--baseline must be cublas, got '%s'", v);
                goto done;
            }
            baseline = true;
            passopts = true;
        } else if ((v = option_value(argc, argv, &i, "--disable-pass"))) {
            if (!check_pass_name(v, "--disable-pass")) goto done;
            disabled[ndisabled++] = v;
            passopts = true;
        } else if (strcmp(a, "--random-inputs") == 0) {
            ro.random_inputs = true;
        } else if (strcmp(a, "--random-weights") == 0) {
            ro.random_weights = true;
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) {
            opt = a[2] - '0';
            passopts = true;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error(usage_run, "unknown option or missing value: '%s'", a);
            goto done;
        } else if (file) {
            rc = usage_error(usage_run, "more than one file given ('%s')", a);
            goto done;
        } else {
            file = a;
        }
    }
    if (!file) {
        rc = usage_error(usage_run, "%s", "no input file");
        goto done;
    }
    if (prec != DT_F32 && opt == 0) {
        rc = usage_error(usage_run, "%s", "--precision needs -O1 or -O2 (-O0 runs no passes)");
        goto done;
    }
    if (baseline) { /* the cuBLAS + unfused kernels baseline */
        if (device_given && ro.device != RT_DEVICE_CUDA) {
            rc = usage_error(usage_run, "--baseline=cublas runs on the GPU (--device cuda), not '%s'",
                             rt_device_name(ro.device));
            goto done;
        }
        ro.device = RT_DEVICE_CUDA;
        ro.gemm = CUDA_GEMM_CUBLAS;
        disabled[ndisabled++] = "fuse";
    }
    ro.input_names = (const char *const *)names;
    ro.input_files = (const char *const *)files;
    ro.bind_names = (const char *const *)bnames;
    ro.bind_values = bvalues;
    Arena *arena = arena_create();
    Diag *d = diag_create();
    rc = EXIT_DIAG;
    RtDsm dsm = {0};
    Graph *g = load_model(arena, d, file, &dsm);
    if (!dsm.graph) request_precision(arena, g, prec); /* a .dsm: refused below (passopts) */
    /* a second copy stays as written, for choosing random weight ranges */
    ro.as_written = g && ro.random_weights && !dsm.graph ? load(arena, d, file) : NULL;
    if (baseline && dsm.graph) {
        usage_error(usage_run,
                    "--baseline=cublas needs DSG source (it runs the passes without fusion); '%s' is a "
                    "compiled model",
                    file);
        rc = EXIT_USAGE;
    } else if (passes_for_dsm(&dsm, passopts, file, usage_run)) {
        rc = EXIT_USAGE;
    } else if (g) {
        PipelineOptions po = {.opt_level = opt, .disabled = disabled, .ndisabled = ndisabled, .sparse = &so};
        if ((dsm.graph || pass_run_pipeline(g, d, &po)) && rt_run_model(g, file, &ro, NULL, d)) rc = EXIT_OK;
        diag_print(d, stderr, true);
    }
    rt_dsm_close(&dsm);
    diag_destroy(d);
    arena_destroy(arena);
done:
    free(disabled);
    free(names);
    free(files);
    free(bnames);
    free(bvalues);
    return rc;
}

static int cmd_bench(int argc, char **argv) {
    const char *file = NULL, *v;
    char **names = calloc((size_t)argc + 1, sizeof(char *)), **files = calloc((size_t)argc + 1, sizeof(char *));
    DType prec = DT_F32;
    const char **disabled = calloc((size_t)argc + 1, sizeof(char *));
    Binds binds = {0};
    BenchOptions bo = {.run = {.device = RT_DEVICE_AUTO, .random_inputs = true}, .iters = 20, .warmup = 3};
    bool json = false, passopts = false; /* -O, --disable-pass, --precision or a sparsity option given */
    int opt = 2, rc = EXIT_USAGE, ndisabled = 0, sr;
    SparsifyOptions so = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *n, *val;
        int64_t x;
        if (is_help(a)) {
            fputs(usage_bench, stdout);
            rc = EXIT_OK;
            goto done;
        } else if ((sr = sparse_option(argc, argv, &i, &so, usage_bench))) {
            if (sr < 0) goto done;
            passopts = true;
        } else if ((v = option_value(argc, argv, &i, "--device"))) {
            if (!rt_device_from_name(v, &bo.run.device) || bo.run.device == RT_DEVICE_CUDA) {
                rc = usage_error(usage_bench, "--device must be auto, cpu or ref, got '%s'", v);
                goto done;
            }
        } else if ((v = option_value(argc, argv, &i, "--iters"))) {
            if (!parse_i64(v, &x) || x < 1 || x > 1000000) {
                rc = usage_error(usage_bench, "--iters needs a positive integer, got '%s'", v);
                goto done;
            }
            bo.iters = (int)x;
        } else if ((v = option_value(argc, argv, &i, "--warmup"))) {
            if (!parse_i64(v, &x) || x < 0 || x > 1000000) {
                rc = usage_error(usage_bench, "--warmup needs a non-negative integer, got '%s'", v);
                goto done;
            }
            bo.warmup = (int)x;
        } else if ((v = option_value(argc, argv, &i, "--bind"))) {
            if (!add_binds(&binds, (char *)v)) {
                rc = usage_error(usage_bench, "--bind needs DIM=VALUE[,DIM=VALUE...] with non-negative integers, got '%s'",
                                 v);
                goto done;
            }
        } else if ((v = option_value(argc, argv, &i, "--seed"))) {
            if (!parse_i64(v, &x)) {
                rc = usage_error(usage_bench, "--seed needs an integer, got '%s'", v);
                goto done;
            }
            bo.run.seed = (uint64_t)x;
        } else if ((v = option_value(argc, argv, &i, "--input"))) {
            if (!split_eq((char *)v, &n, &val)) {
                rc = usage_error(usage_bench, "--input needs NAME=FILE, got '%s'", v);
                goto done;
            }
            names[bo.run.ninputs] = n;
            files[bo.run.ninputs++] = val;
        } else if ((v = option_value(argc, argv, &i, "--weights"))) {
            bo.run.weights = v;
        } else if ((v = option_value(argc, argv, &i, "--precision"))) {
            if (!parse_precision(v, &prec, usage_bench)) goto done;
            passopts = true;
        } else if ((v = option_value(argc, argv, &i, "--output-dir"))) {
            bo.run.output_dir = v;
        } else if ((v = option_value(argc, argv, &i, "--disable-pass"))) {
            if (!check_pass_name(v, "--disable-pass")) goto done;
            disabled[ndisabled++] = v;
            passopts = true;
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) {
            opt = a[2] - '0';
            passopts = true;
        } else if (strcmp(a, "--no-cache") == 0) {
            bo.no_cache = true;
        } else if (strcmp(a, "--profile") == 0) {
            bo.profile = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error(usage_bench, "unknown option or missing value: '%s'", a);
            goto done;
        } else if (file) {
            rc = usage_error(usage_bench, "more than one file given ('%s')", a);
            goto done;
        } else {
            file = a;
        }
    }
    if (!file) {
        rc = usage_error(usage_bench, "%s", "no input file");
        goto done;
    }
    if (prec != DT_F32 && opt == 0) {
        rc = usage_error(usage_bench, "%s", "--precision needs -O1 or -O2 (-O0 runs no passes)");
        goto done;
    }
    bo.run.input_names = (const char *const *)names;
    bo.run.input_files = (const char *const *)files;
    bo.run.nbinds = binds.n;
    bo.run.bind_names = (const char *const *)binds.names;
    bo.run.bind_values = binds.values;
    Arena *arena = arena_create();
    Diag *d = diag_create();
    rc = EXIT_DIAG;
    double t0 = rt_bench_now();
    RtDsm dsm = {0};
    Graph *g = load_model(arena, d, file, &dsm);
    if (!dsm.graph) request_precision(arena, g, prec); /* a .dsm: refused below (passopts) */
    bo.run.random_weights = !bo.run.weights && !dsm.graph; /* a .dsm has its own */
    PipelineOptions po = {.opt_level = opt, .disabled = disabled, .ndisabled = ndisabled, .sparse = &so};
    bool ok = g && !passes_for_dsm(&dsm, passopts, file, usage_bench) &&
              (dsm.graph || pass_run_pipeline(g, d, &po));
    if (g && dsm.graph && passopts) rc = EXIT_USAGE;
    double load_ms = (rt_bench_now() - t0) * 1e3;
    /* a second copy stays as written, for choosing random weight ranges */
    bo.run.as_written = ok && bo.run.random_weights ? load(arena, d, file) : NULL;
    if (ok) {
        BenchResult res;
        if (rt_bench_model(g, file, &bo, &res, d)) {
            res.load_ms = load_ms;
            diag_print(d, stderr, true); /* warnings (a fallback to ref) before the report */
            diag_clear(d);
            rt_bench_print(stdout, &res, file, json);
            bo.run.summary = json ? NULL : stdout; /* text: one line per output of the last run */
            if (rt_model_outputs_write(g, &bo.run, res.outputs, d)) rc = EXIT_OK;
            fflush(stdout);
        }
        rt_bench_result_free(&res);
    }
    diag_print(d, stderr, true);
    rt_dsm_close(&dsm);
    diag_destroy(d);
    arena_destroy(arena);
done:
    free(disabled);
    free(names);
    free(files);
    return rc;
}

static int cmd_inspect(int argc, char **argv) {
    const char *file = NULL;
    bool json = false, kir = false;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_inspect, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--kernel-ir") == 0) {
            kir = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error(usage_inspect, "unknown option '%s'", argv[i]);
        } else if (file) {
            return usage_error(usage_inspect, "more than one file given ('%s')", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!file) return usage_error(usage_inspect, "%s", "no input file");
    Arena *a = arena_create();
    Diag *d = diag_create();
    RtDsm dsm = {0};
    bool ok = rt_dsm_open(file, a, &dsm, d) && rt_dsm_print(&dsm, file, stdout, json, kir);
    diag_print(d, stderr, true);
    rt_dsm_close(&dsm);
    diag_destroy(d);
    arena_destroy(a);
    return ok ? EXIT_OK : EXIT_DIAG;
}

static int cmd_prune(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *v;
    RunOptions ro = {0};
    SparsifyOptions so = {0};
    int rc = EXIT_USAGE, sr;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int64_t x;
        if (is_help(a)) {
            fputs(usage_prune, stdout);
            return EXIT_OK;
        } else if ((sr = sparse_option(argc, argv, &i, &so, usage_prune))) {
            if (sr < 0) return EXIT_USAGE;
        } else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if ((v = option_value(argc, argv, &i, "--weights"))) {
            ro.weights = v;
        } else if ((v = option_value(argc, argv, &i, "--seed"))) {
            if (!parse_i64(v, &x)) return usage_error(usage_prune, "--seed needs an integer, got '%s'", v);
            ro.seed = (uint64_t)x;
        } else if (strcmp(a, "--random-weights") == 0) {
            ro.random_weights = true;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(usage_prune, "unknown option or missing value: '%s'", a);
        } else if (file) {
            return usage_error(usage_prune, "more than one file given ('%s')", a);
        } else {
            file = a;
        }
    }
    if (!file) return usage_error(usage_prune, "%s", "no input file");
    if (!out) return usage_error(usage_prune, "%s", "-o OUT.safetensors is required");
    Arena *arena = arena_create();
    Diag *d = diag_create();
    rc = EXIT_DIAG;
    Graph *g = load(arena, d, file);
    if (g) {
        /* -O0: only sparsify runs, so the params are the model's own */
        PipelineOptions po = {.opt_level = 0, .sparse = &so};
        ro.random_inputs = true;
        if (pass_run_pipeline(g, d, &po) && rt_prune_write(g, file, &ro, out, d)) rc = EXIT_OK;
        diag_print(d, stderr, true);
    }
    diag_destroy(d);
    arena_destroy(arena);
    return rc;
}

static int cmd_calibrate(int argc, char **argv) {
    const char *file = NULL, *dir = NULL, *weights = NULL, *v;
    const char **disabled = calloc((size_t)argc + 1, sizeof(char *));
    double percentile = 100;
    int opt = 2, ndisabled = 0, rc = EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (is_help(a)) {
            fputs(usage_calibrate, stdout);
            rc = EXIT_OK;
            goto done;
        } else if ((v = option_value(argc, argv, &i, "--data"))) {
            dir = v;
        } else if ((v = option_value(argc, argv, &i, "--weights"))) {
            weights = v;
        } else if ((v = option_value(argc, argv, &i, "--percentile"))) {
            percentile = strtod(v, &end);
            if (end == v || *end || !(percentile > 0 && percentile <= 100)) {
                rc = usage_error(usage_calibrate, "--percentile needs a number in (0, 100], got '%s'", v);
                goto done;
            }
        } else if ((v = option_value(argc, argv, &i, "--disable-pass"))) {
            if (!check_pass_name(v, "--disable-pass")) goto done;
            disabled[ndisabled++] = v;
        } else if (strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) {
            opt = a[2] - '0';
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error(usage_calibrate, "unknown option or missing value: '%s'", a);
            goto done;
        } else if (file) {
            rc = usage_error(usage_calibrate, "more than one file given ('%s')", a);
            goto done;
        } else {
            file = a;
        }
    }
    if (!file || !dir) {
        rc = usage_error(usage_calibrate, "%s", !file ? "no input file" : "--data DIR is required");
        goto done;
    }
    Diag *d = diag_create();
    CalibSets sets;
    rc = EXIT_DIAG;
    if (rt_calib_sets(dir, &sets, d)) {
        CalibOptions co = {.sets = &sets,
                           .percentile = percentile,
                           .opt_level = opt,
                           .disabled = disabled,
                           .ndisabled = ndisabled,
                           .run = {.random_weights = !weights,
                                   .weights = weights,
                                   .device = rt_host_available() ? RT_DEVICE_CPU : RT_DEVICE_REF}};
        double *absmax = calloc(PREC_MAX_CAND, sizeof(double));
        PrecisionRequest *req = calloc(1, sizeof *req);
        int n;
        if (rt_calibrate(file, &co, absmax, &n, req, d)) {
            printf("calibration of %s: %d input set%s from %s, %s\n", file, sets.n, sets.n == 1 ? "" : "s",
                   dir, percentile < 100 ? "percentile" : "min-max");
            printf("  %-72s %-12s %s\n", "op", "range", "scale");
            for (int i = 0; i < n; i++) {
                char scale[64]; /* as the compiled graph prints it */
                ir_format_double((double)(float)(fmax(absmax[i], 1e-30) / 127.0), scale, sizeof scale);
                printf("  %-72s %-12.6g %s\n", req->cand[i].label, absmax[i], scale);
            }
            rc = EXIT_OK;
        }
        free(req);
        free(absmax);
        rt_calib_sets_free(&sets);
    }
    fflush(stdout);
    diag_print(d, stderr, true);
    diag_destroy(d);
done:
    free(disabled);
    return rc;
}

static int cmd_passes(int argc, char **argv) {
    if (argc > 0 && is_help(argv[0])) {
        fputs(usage_passes, stdout);
        return EXIT_OK;
    }
    if (argc > 0) return usage_error(usage_passes, "unexpected argument '%s'", argv[0]);
    for (int i = 0; i < pass_count(); i++) {
        const PassInfo *p = pass_get(i);
        printf("%2d  %-12s -O%d  %s\n", i + 1, p->name, p->min_opt, p->summary);
    }
    return EXIT_OK;
}

static int cmd_hwdb(int argc, char **argv) {
    const char *arch = NULL, *file = NULL, *cc = NULL, *name = NULL, *v;
    int64_t sms = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(usage_hwdb, stdout);
            return EXIT_OK;
        } else if ((v = option_value(argc, argv, &i, "--arch"))) {
            arch = v;
        } else if ((v = option_value(argc, argv, &i, "--db"))) {
            file = v;
        } else if ((v = option_value(argc, argv, &i, "--cc"))) {
            cc = v;
        } else if ((v = option_value(argc, argv, &i, "--name"))) {
            name = v;
        } else if ((v = option_value(argc, argv, &i, "--sms"))) {
            if (!parse_i64(v, &sms) || sms < 1 || sms > 100000)
                return usage_error(usage_hwdb, "--sms needs a positive integer, got '%s'", v);
        } else {
            return usage_error(usage_hwdb, "unknown option or missing value: '%s'", a);
        }
    }
    HwQuery q = {.name = name, .sms = (int)sms};
    if (cc) {
        int used = 0;
        if (sscanf(cc, "%d.%d%n", &q.cc_major, &q.cc_minor, &used) != 2 || cc[used] || q.cc_major < 1 ||
            q.cc_minor < 0 || q.cc_minor > 9)
            return usage_error(usage_hwdb, "--cc needs MAJOR.MINOR such as 9.0, got '%s'", cc);
    } else if (name || sms) {
        return usage_error(usage_hwdb, "%s", "--name and --sms go with --cc");
    }
    if (arch && cc) return usage_error(usage_hwdb, "%s", "--arch and --cc exclude each other");
    Diag *d = diag_create();
    char how[256] = "--db";
    HwDb *db = file ? rt_hwdb_load(file, d) : rt_hwdb_open_default(how, sizeof how, d);
    int rc = EXIT_DIAG;
    if (db) {
        if (arch) {
            const HwEntry *e = rt_hwdb_arch(db, arch);
            if (e) {
                rt_hwdb_print_entry(e, stdout);
                rc = EXIT_OK;
            } else {
                fprintf(stderr, "%s: hwdb: no entry '%s' in %s; entries:", prog, arch, rt_hwdb_path(db));
                for (int i = 0; i < rt_hwdb_count(db); i++) fprintf(stderr, " %s", rt_hwdb_entry(db, i)->arch);
                fprintf(stderr, "\n");
            }
        } else if (cc) {
            if (rt_hwdb_print_query(db, &q, stdout, d)) rc = EXIT_OK;
        } else {
            printf("hardware database: %s (via %s)\n\n", rt_hwdb_path(db), how);
            rt_hwdb_print_table(db, stdout);
            printf("\n");
            if (rt_hwdb_print_machine(db, stdout, d)) rc = EXIT_OK;
        }
        rt_hwdb_free(db);
    }
    fflush(stdout);
    diag_print(d, stderr, false);
    diag_destroy(d);
    return rc;
}

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} Command;

static const Command commands[] = {
    {"check", cmd_check, usage_check},
    {"compile", cmd_compile, usage_compile},
    {"run", cmd_run, usage_run},
    {"bench", cmd_bench, usage_bench},
    {"calibrate", cmd_calibrate, usage_calibrate},
    {"inspect", cmd_inspect, usage_inspect},
    {"prune", cmd_prune, usage_prune},
    {"passes", cmd_passes, usage_passes},
    {"hwdb", cmd_hwdb, usage_hwdb},
};

static const Command *find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (is_help(cmd)) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("dsc %s\n", dsc_version());
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            fputs(usage_main, stdout);
            return EXIT_OK;
        }
        const Command *c = find_command(argv[2]);
        if (!c) return usage_error(usage_main, "unknown command '%s'", argv[2]);
        fputs(c->usage, stdout);
        return EXIT_OK;
    }
    const Command *c = find_command(cmd);
    if (!c) return usage_error(usage_main, "unknown command '%s'", cmd);
    return c->run(argc - 2, argv + 2);
}
