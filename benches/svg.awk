# A tiny SVG bar chart writer (no plotting dependency): reads "label value" lines, writes one
# SVG. Variables: title, unit (shown after each value). Usage:
#   printf 'a 10\nb 20\n' | awk -v title="…" -v unit="jobs/s" -f benches/svg.awk > out.svg
{ label[NR] = $1; value[NR] = $2 + 0; if (value[NR] > max) max = value[NR]; if (length($1) > long) long = length($1) }
END {
    step = 7 * long + 16; if (step < 120) step = 120
    n = NR; w = step * n + 80; h = 300; top = 40; base = 250
    if (max <= 0) max = 1
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", w, h
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n", w / 2, title
    printf "<line x1=\"40\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", base, w - 20, base
    for (i = 1; i <= n; i++) {
        bh = (base - top) * value[i] / max; x = 60 + (i - 1) * step + (step - 120) / 2
        printf "<rect x=\"%d\" y=\"%.1f\" width=\"80\" height=\"%.1f\" fill=\"#4a7ab5\"/>\n", x, base - bh, bh
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%s %s</text>\n", x + 40, base - bh - 5, value[i], unit
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x + 40, base + 18, label[i]
    }
    printf "</svg>\n"
}
