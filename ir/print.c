/* The DSG printer: the textual IR is the language itself.
 *
 * The graph prints as one `model` whose computations are flat `let`s in node
 * order, with every operator call written against its schema (tensor operands
 * positionally until the first absent optional one, then by name; every
 * attribute by name).  Temporaries get fresh names `_tN` that avoid every user
 * name.  Outputs come last, in order.  Constants print inline as literals, so
 * reparsing gives back the same weakly typed constants.  The result parses
 * back to the same graph, so print(parse(print(parse(x)))) == print(parse(x)). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "strmap.h"

typedef struct {
    const Graph *g;
    FILE *out;
    const char **names; /* per node id: the name it prints as (NULL: inline constant) */
} Printer;

static void print_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if (*s == '\n') {
            fputs("\\n", out);
            continue;
        }
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_dim(const Printer *p, DimId d) {
    char buf[256];
    int n = dim_snprint(p->g->dims, d, buf, sizeof buf);
    if ((size_t)n < sizeof buf) {
        fputs(buf, p->out);
        return;
    }
    char *big = arena_alloc(p->g->arena, (size_t)n + 1);
    dim_snprint(p->g->dims, d, big, (size_t)n + 1);
    fputs(big, p->out);
}

static void print_type(const Printer *p, const Type *t) {
    fputs(dtype_name(t->dtype), p->out);
    if (t->rank == 0) return;
    fputc('[', p->out);
    for (int i = 0; i < t->rank; i++) {
        if (i) fputs(", ", p->out);
        print_dim(p, t->dim[i]);
    }
    fputc(']', p->out);
}

static void print_number(FILE *out, double v) {
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        fprintf(out, "%" PRId64, (int64_t)v);
        return;
    }
    char buf[64];
    ir_format_double(v, buf, sizeof buf);
    fputs(buf, out);
}

static void print_attr_value(const Printer *p, const Attr *a) {
    FILE *out = p->out;
    switch (a->kind) {
    case AV_INT: fprintf(out, "%" PRId64, a->i); break;
    case AV_FLOAT: {
        char buf[64];
        ir_format_double(a->f, buf, sizeof buf);
        fputs(buf, out);
        break;
    }
    case AV_STRING: print_string(out, a->s); break;
    case AV_BOOL: fputs(a->b ? "true" : "false", out); break;
    case AV_DTYPE: fputs(dtype_name(a->dt), out); break;
    case AV_INTS:
    case AV_DIMS:
        fputc('[', out);
        for (int i = 0; i < a->n; i++) {
            if (i) fputs(", ", out);
            if (a->kind == AV_INTS)
                fprintf(out, "%" PRId64, a->ints[i]);
            else
                print_dim(p, a->dims[i]);
        }
        fputc(']', out);
        break;
    }
}

/* Source hints, then what the passes attached: the fusion group and the
 * memory-plan buffer.  The frontend reads @group and @buffer back, so a dump
 * after fusion or planning compiles to the same annotated graph. */
static void print_hints(const Printer *p, const Node *n) {
    for (int i = 0; i < n->nhints; i++) {
        const Hint *h = &n->hints[i];
        if (strcmp(h->name, "group") == 0 || strcmp(h->name, "buffer") == 0) continue;
        fprintf(p->out, " @%s", h->name);
        if (h->nargs == 0) continue;
        fputc('(', p->out);
        for (int j = 0; j < h->nargs; j++) {
            if (j) fputs(", ", p->out);
            if (h->args[j].name) fprintf(p->out, "%s=", h->args[j].name);
            print_attr_value(p, &h->args[j]);
        }
        fputc(')', p->out);
    }
    const Graph *g = p->g;
    if (n->ann.group >= 0 && n->ann.group < g->ngroups) {
        /* kind and reason once, on the group's first member */
        const Group *grp = g->groups[n->ann.group];
        fprintf(p->out, " @group(id=%d", grp->id);
        if (grp->nodes[0] == n) {
            fprintf(p->out, ", kind=\"%s\", reason=", ir_group_kind_name(grp->kind));
            print_string(p->out, grp->reason);
        }
        fputc(')', p->out);
    }
    if (n->ann.buffer >= 0) fprintf(p->out, " @buffer(id=%d)", n->ann.buffer);
}

static void print_literal(const Printer *p, const Node *n) {
    if (n->dval != DIM_INVALID)
        print_dim(p, n->dval);
    else
        print_number(p->out, n->fval);
}

static void print_operand(const Printer *p, const Node *n) {
    if (p->names[n->id])
        fputs(p->names[n->id], p->out);
    else
        print_literal(p, n);
}

static void print_call(const Printer *p, const Node *n) {
    const OpSchema *sc = ir_op_schema(n->op);
    fprintf(p->out, "%s(", sc->name);
    bool first = true, positional = true;
#define SEP() (first ? (void)(first = false) : (void)fputs(", ", p->out))
    if (sc->variadic) {
        for (int i = 0; i < n->nin; i++) {
            SEP();
            print_operand(p, n->in[i]);
        }
    }
    int k = 0;
    for (int i = 0; i < sc->nparams; i++) {
        const OpParam *par = &sc->params[i];
        if (par->kind == PK_TENSOR) {
            const Node *x = k < n->nin ? n->in[k] : NULL;
            k++;
            if (!x) {
                positional = false;
                continue;
            }
            SEP();
            if (!positional) fprintf(p->out, "%s=", par->name);
            print_operand(p, x);
        } else {
            const Attr *a = ir_attr(n, par->name);
            if (!a) continue;
            SEP();
            fprintf(p->out, "%s=", par->name);
            print_attr_value(p, a);
        }
    }
#undef SEP
    fputc(')', p->out);
}

void ir_print_dsg(const Graph *g, FILE *out) {
    Arena *a = g->arena;
    Printer p = {g, out, arena_alloc(a, sizeof(char *) * (size_t)(g->nnodes ? g->nnodes : 1))};
    /* Every user name is taken; temporaries and duplicates get fresh names. */
    StrMap taken;
    strmap_init(&taken, a);
    for (int i = 0; i < dim_sym_count(g->dims); i++) strmap_put(&taken, dim_sym_name(g->dims, i), (void *)1);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->name) strmap_put(&taken, g->nodes[i]->name, (void *)1);
    for (int i = 0; i < g->noutputs; i++) strmap_put(&taken, g->outputs[i].name, (void *)1);
    StrMap used;
    strmap_init(&used, a);
    int counter = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_CONST && !n->name) continue; /* printed inline */
        const char *name = n->name;
        if (!name || strmap_get(&used, name)) {
            do name = arena_printf(a, "_t%d", counter++);
            while (strmap_get(&taken, name));
        }
        strmap_put(&used, name, (void *)1);
        p.names[i] = name;
    }

    if (g->ngroups) fprintf(out, "# %d fusion groups (@group on each member)\n", g->ngroups);
    for (int i = 0; i < g->nbuffers; i++) {
        fprintf(out, "# buffer %d: ", g->buffers[i].id);
        print_dim(&p, g->buffers[i].bytes);
        fputs(" bytes\n", out);
    }
    fprintf(out, "model %s {\n", g->name ? g->name : "model");
    if (g->weights) {
        fputs("  weights ", out);
        print_string(out, g->weights);
        fputc('\n', out);
    }
    for (int i = 0; i < dim_sym_count(g->dims); i++) {
        fprintf(out, "  dim %s", dim_sym_name(g->dims, i));
        if (dim_sym_bound(g->dims, i) >= 0) fprintf(out, " <= %" PRId64, dim_sym_bound(g->dims, i));
        fputc('\n', out);
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!p.names[i]) continue;
        switch (n->op) {
        case OP_INPUT:
        case OP_PARAM:
            fprintf(out, "  %s %s : ", n->op == OP_INPUT ? "input" : "param", p.names[i]);
            print_type(&p, &n->type);
            if (n->op == OP_PARAM && n->key && strcmp(n->key, p.names[i]) != 0) {
                fputs(" from ", out);
                print_string(out, n->key);
            }
            break;
        case OP_CONST:
            fprintf(out, "  let %s = ", p.names[i]);
            print_literal(&p, n);
            break;
        default:
            fprintf(out, "  let %s = ", p.names[i]);
            print_call(&p, n);
            break;
        }
        print_hints(&p, n);
        fputc('\n', out);
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        const char *vn = p.names[o->node->id];
        if (vn && strcmp(vn, o->name) == 0) {
            fprintf(out, "  output %s\n", o->name);
        } else {
            fprintf(out, "  output %s = ", o->name);
            print_operand(&p, o->node);
            fputc('\n', out);
        }
    }
    fputs("}\n", out);
}
