"""A picture of a computational graph without Graphviz, for
``utils.plot_dot_graph`` on machines that lack the ``dot`` program (Graphviz
is not a pip package; a fresh venv or Windows rarely has it).

The layout is the one the graph already has: generations. A variable of
generation g sits on layer 2g and a function of generation g (the largest of
its inputs') on layer 2g + 1, so every edge goes one or more layers down,
inputs above outputs as in Graphviz's drawing. Within a layer, nodes are
ordered by the mean position of what feeds them (one barycentre pass), which
keeps most edges short. Drawn with matplotlib's object API (no pyplot, so
the caller's backend and figures are left alone).
"""
# A graph of thousands of nodes must still give a picture any viewer opens
# (Pillow refuses images over 89 million pixels): at most this many inches
# a side, at _DPI.
_MAX_INCHES = 30.0
_DPI = 100


def _layers(output, label_of):
    """(layers, edges, labels, kinds): node ids per layer, (src, dst)
    pairs, and each node's label and kind ('var' or 'func')."""
    rank, labels, kinds, edges = {}, {}, {}, []

    def add_var(v):
        if id(v) not in rank:
            rank[id(v)] = 2 * v.generation
            labels[id(v)] = label_of(v)
            kinds[id(v)] = 'var'

    add_var(output)
    stack, seen = [], set()
    if output.creator is not None:
        stack.append(output.creator)
        seen.add(id(output.creator))
    while stack:
        f = stack.pop()
        rank[id(f)] = 2 * f.generation + 1
        labels[id(f)] = type(f).__name__
        kinds[id(f)] = 'func'
        for x in f.inputs:
            add_var(x)
            edges.append((id(x), id(f)))
            c = x.creator
            if c is not None and id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
        for ref in f.outputs:
            y = ref()
            if y is not None:
                add_var(y)
                edges.append((id(f), id(y)))
    # Rows top to bottom, empty layers (generations with no node) dropped.
    order = sorted(set(rank.values()))
    row = {r: i for i, r in enumerate(order)}
    layers = [[] for _ in order]
    for node, r in rank.items():
        layers[row[r]].append(node)
    return layers, edges, labels, kinds


def _positions(layers, edges):
    """x in [0, 1] and row index for every node."""
    parents = {}
    for src, dst in edges:
        parents.setdefault(dst, []).append(src)
    pos = {}
    for i, layer in enumerate(layers):
        def key(node, i=i):
            xs = [pos[p][0] for p in parents.get(node, ()) if p in pos]
            return sum(xs) / len(xs) if xs else 0.5
        layer.sort(key=key)
        n = len(layer)
        for j, node in enumerate(layer):
            pos[node] = ((j + 0.5) / n, i)
    return pos


def draw(output, to_file, label_of):
    """Draw the graph behind ``output`` into ``to_file`` (any format
    matplotlib writes, by extension). Raises ImportError without
    matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    layers, edges, labels, kinds = _layers(output, label_of)
    pos = _positions(layers, edges)
    width = max(len(layer) for layer in layers)
    w = min(_MAX_INCHES, max(3.0, 1.4 * width))
    h = min(_MAX_INCHES, max(2.0, 0.7 * len(layers)))
    # Labels shrink as the picture gets crowded, down to a legible minimum.
    fontsize = max(3.0, min(9.0, 9.0 * min(w / (1.4 * width), h / (0.7 * len(layers)))))

    fig = Figure(figsize=(w, h), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(layers) - 0.5, -0.5)    # row 0 at the top

    def xy(node):
        return pos[node]

    if len(edges) <= 400:
        for src, dst in edges:
            ax.annotate('', xy=xy(dst), xytext=xy(src), zorder=1,
                        arrowprops=dict(arrowstyle='->', color='0.35', lw=0.7,
                                        shrinkA=fontsize, shrinkB=fontsize))
    else:   # arrowheads cost a patch each; plain lines for large graphs
        ax.add_collection(LineCollection([(xy(s), xy(d)) for s, d in edges],
                                         colors='0.5', linewidths=0.3, zorder=1))
    for node, (x, row) in pos.items():
        if kinds[node] == 'func':
            box = dict(boxstyle='square,pad=0.3', fc='lightblue', ec='steelblue')
        else:
            box = dict(boxstyle='round,pad=0.3', fc='orange', ec='darkorange')
        ax.text(x, row, labels[node] or ' ', ha='center', va='center',
                fontsize=fontsize, bbox=box, zorder=2)
    fig.savefig(to_file, dpi=_DPI)

