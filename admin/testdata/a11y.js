// The accessibility basics of the page shown, as a list of problems (empty when it passes):
// every form control has a label, there is one h1 and no heading level is skipped, text has a
// contrast of at least 4.5:1 with what is behind it (3:1 for large text), images have a text.
(() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (["hidden", "submit", "button", "reset"].includes(el.type)) continue;
    const byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
    if (!byFor && !el.closest("label") && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) {
      problems.push("a " + el.tagName.toLowerCase() + " without a label: " + (el.name || el.id || el.outerHTML.slice(0, 60)));
    }
  }
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")];
  const h1s = headings.filter((h) => h.tagName === "H1").length;
  if (h1s !== 1) problems.push(h1s + " h1 headings, want one");
  let prev = 0;
  for (const h of headings) {
    const level = Number(h.tagName[1]);
    if (prev && level > prev + 1) problems.push("h" + level + " right after h" + prev + ": " + h.textContent.trim());
    prev = level;
  }
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (!document.title) problems.push("no title");
  for (const img of document.querySelectorAll("img:not([alt]), svg[role=img]:not([aria-label])")) {
    problems.push("an image without a text alternative: " + img.outerHTML.slice(0, 60));
  }

  const parse = (s) => {
    const m = /rgba?\(([^)]+)\)/.exec(s);
    if (!m) return null;
    const p = m[1].split(",").map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const el = walker.currentNode.parentElement;
    if (!text || !el || seen.has(el)) continue;
    seen.add(el);
    const cs = getComputedStyle(el);
    if (cs.display === "none" || cs.visibility === "hidden" || el.closest("script, style, title")) continue;
    const inSVG = el.closest("svg");
    const fg = parse(inSVG ? cs.fill : cs.color);
    if (!fg) continue;
    const bg = background(inSVG || el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) problems.push("contrast " + ratio.toFixed(2) + ":1 of \"" + text.slice(0, 40) + "\"");
  }
  return problems;
})()
