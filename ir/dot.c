/* Graphviz export: one graph node per operation (inputs, params and outputs
 * as ellipses, constants as plain text), one edge per operand labelled with the
 * tensor's dtype and shape. */
#include <stdio.h>
#include <string.h>

#include "ir.h"

static void put_escaped(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

void ir_print_dot(const Graph *g, FILE *out) {
    fputs("digraph \"", out);
    put_escaped(out, g->name ? g->name : "model");
    fputs("\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n"
          "  edge [fontname=\"monospace\", fontsize=10];\n",
          out);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        fprintf(out, "  n%d [label=\"", n->id);
        if (n->op == OP_CONST) {
            if (n->dval != DIM_INVALID)
                put_escaped(out, dim_str(g->dims, n->dval, g->arena));
            else
                fprintf(out, "%g", n->fval);
            fputs("\", shape=plaintext];\n", out);
            continue;
        }
        put_escaped(out, ir_op_name(n->op));
        if (n->name) {
            fputs(" ", out);
            put_escaped(out, n->name);
        }
        if (n->op == OP_INPUT || n->op == OP_PARAM) {
            fputs("\\n", out);
            put_escaped(out, ir_type_str(g, &n->type));
            fputs("\", shape=ellipse];\n", out);
        } else {
            fputs("\"];\n", out);
        }
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            if (!n->in[k]) continue;
            fprintf(out, "  n%d -> n%d [label=\"", n->in[k]->id, n->id);
            put_escaped(out, ir_type_str(g, &n->in[k]->type));
            fputs("\"];\n", out);
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        fprintf(out, "  out%d [label=\"output ", i);
        put_escaped(out, o->name);
        fputs("\", shape=ellipse];\n", out);
        fprintf(out, "  n%d -> out%d [label=\"", o->node->id, i);
        put_escaped(out, ir_type_str(g, &o->node->type));
        fputs("\"];\n", out);
    }
    fputs("}\n", out);
}
