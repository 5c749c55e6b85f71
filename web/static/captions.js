// Captions: a member's bubble holds the whole answer as it is written (`bubble.full`); once its
// sound plays, `bubble.caption` ({start, end, playing}) marks the sentence sounding now, and the
// text is laid out as what was said, what sounds now and what is still ahead (style.css dims it).
Council.captions = (() => {
  function render(bubble) {
    const el = bubble.querySelector(".text");
    const full = bubble.full || "";
    const c = bubble.caption;
    if (!c) { el.textContent = full; return; }
    const part = (cls, words) => {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = words;
      return span;
    };
    el.replaceChildren(part("said", full.slice(0, c.start)), part(c.playing ? "now" : "said", full.slice(c.start, c.end)),
      part("ahead", full.slice(c.end)));
  }

  // Where sentence `index` (its words `words`) lies in the bubble's text: after the sentences before it.
  function locate(bubble, index, words) {
    bubble.sentences ||= new Map();
    if (bubble.sentences.has(index)) return bubble.sentences.get(index);
    const full = bubble.full || "";
    const from = Math.max(0, ...[...bubble.sentences].filter(([i]) => i < index).map(([, r]) => r.end));
    const wanted = (words || "").trim();
    const at = wanted ? full.indexOf(wanted, from) : -1;
    const range = { start: from, end: at >= 0 ? at + wanted.length : Math.min(full.length, from + wanted.length + 1) };
    bubble.sentences.set(index, range);
    return range;
  }

  return { render, locate };
})();
