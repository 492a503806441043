# An SVG line chart (no plotting dependency): reads "series x y" lines (x and y numbers), one
# polyline per series in order of first appearance. Variables: title, xunit, yunit. Usage:
#   printf 'w1 0 30\nw1 1 34\nw2 0 31\n' | awk -v title="…" -v xunit="s" -v yunit="MiB" \
#       -f benches/svg-lines.awk > out.svg
BEGIN { split("#4a7ab5 #d9822b #5a9e4b #b54a6a #7a5ab5 #8a8a8a", colour, " ") }
{
    if (!($1 in idx)) { idx[$1] = ++ns; name[ns] = $1 }
    s = idx[$1]; c = ++count[s]; xs[s, c] = $2 + 0; ys[s, c] = $3 + 0
    if (NR == 1 || $2 + 0 > xmax) xmax = $2 + 0
    if (NR == 1 || $2 + 0 < xmin) xmin = $2 + 0
    if ($3 + 0 > ymax) ymax = $3 + 0
}
END {
    w = 640; h = 340; left = 60; right = 20; top = 50; base = 290
    if (ymax <= 0) ymax = 1
    if (xmax <= xmin) xmax = xmin + 1
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", w, h
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n", w / 2, title
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, base, w - right, base
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, top, left, base
    for (t = 0; t <= 4; t++) {
        y = base - (base - top) * t / 4
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f %s</text>\n", left - 4, y + 4, ymax * t / 4, yunit
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.1f %s</text>\n", left + (w - left - right) * t / 4, base + 16, xmin + (xmax - xmin) * t / 4, xunit
    }
    for (s = 1; s <= ns; s++) {
        col = colour[(s - 1) % 6 + 1]
        printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col
        for (c = 1; c <= count[s]; c++)
            printf "%.1f,%.1f ", left + (w - left - right) * (xs[s, c] - xmin) / (xmax - xmin), base - (base - top) * ys[s, c] / ymax
        printf "\"/>\n"
        printf "<rect x=\"%d\" y=\"30\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"39\">%s</text>\n", left + (s - 1) * 110, col, left + 14 + (s - 1) * 110, name[s]
    }
    printf "</svg>\n"
}
