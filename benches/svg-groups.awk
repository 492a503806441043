# A grouped SVG bar chart (no plotting dependency): reads "label v1 v2 …" lines, one group of
# bars per line, one colour per series. Variables: title, unit (shown after each value),
# series (comma-separated names of the columns, for the legend). Usage:
#   printf '10^2 3.1 17\n10^3 3.4 19\n' | awk -v title="…" -v unit="ms" -v series="p50,p99" \
#       -f benches/svg-groups.awk > out.svg
BEGIN { split("#4a7ab5 #d9822b #5a9e4b #b54a6a #7a5ab5 #8a8a8a", colour, " ") }
{
    label[NR] = $1
    if (NF - 1 > k) k = NF - 1
    for (j = 2; j <= NF; j++) { value[NR, j - 1] = $j + 0; if ($j + 0 > max) max = $j + 0 }
}
END {
    n = NR; ns = split(series, name, ","); if (k > ns) ns = k
    bw = 46; gw = bw * k + 30; w = gw * n + 100; h = 340; top = 50; base = 280
    if (max <= 0) max = 1
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", w, h
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n", w / 2, title
    for (j = 1; j <= k; j++) {
        printf "<rect x=\"%d\" y=\"30\" width=\"10\" height=\"10\" fill=\"%s\"/>", 50 + (j - 1) * 150, colour[(j - 1) % 6 + 1]
        printf "<text x=\"%d\" y=\"39\">%s</text>\n", 64 + (j - 1) * 150, name[j]
    }
    printf "<line x1=\"40\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", base, w - 20, base
    for (i = 1; i <= n; i++) {
        x0 = 60 + (i - 1) * gw
        for (j = 1; j <= k; j++) {
            if (!((i, j) in value)) continue
            v = value[i, j]; bh = (base - top - 12) * v / max; x = x0 + (j - 1) * bw
            printf "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"/>\n", x, base - bh, bw - 4, bh, colour[(j - 1) % 6 + 1]
            printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%s%s</text>\n", x + (bw - 4) / 2, base - bh - 4, v, unit
        }
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x0 + (bw * k - 4) / 2, base + 18, label[i]
    }
    printf "</svg>\n"
}
