// The usage panel: what you spent today (UTC), by member, against your limits; refreshed every
// few seconds while the page is open, and at once when opened.
(() => {
  const panel = document.getElementById("usage");
  const summary = document.getElementById("usage-summary");
  const body = document.getElementById("usage-body");
  if (!panel) return;
  Object.assign(body.style, {
    position: "absolute", right: "1.4rem", top: "3.2rem", minWidth: "17rem", padding: ".8rem 1rem",
    background: "var(--panel)", border: "1px solid #2c3245", borderRadius: "var(--radius)",
    fontSize: ".85rem", boxShadow: "0 10px 30px rgba(0,0,0,.35)",
  });

  const fmt = {
    tokens: (v) => `${Math.round(v).toLocaleString()} tokens`,
    seconds: (v) => `${v.toFixed(1)} s`,
    money: (v, currency) => `${v.toFixed(4)} ${currency}`,
  };
  const line = (label, text) => {
    const row = document.createElement("div");
    row.style.display = "flex"; row.style.gap = "1rem"; row.style.justifyContent = "space-between";
    const a = document.createElement("span"); a.textContent = label; a.style.color = "var(--muted)";
    const b = document.createElement("span"); b.textContent = text;
    row.append(a, b);
    return row;
  };

  function render(u) {
    const c = u.currency || "";  // none without the council (echo): nothing is priced then
    // One figure in the header: what the day cost (speech and recognition cost money even when no
    // language model token was spent); without prices, the compute time. The parts are in the panel.
    const headline = c ? fmt.money(u.spent.money, c) : `${fmt.seconds(u.spent.seconds)} of compute`;
    summary.textContent = `Today: ${headline}${u.frozen ? " · frozen" : ""}`;
    body.replaceChildren(
      line("user", u.user),
      ...(c ? [line("cost", fmt.money(u.spent.money, c))] : []),
      line("language model", fmt.tokens(u.spent.tokens)),
      line("speech and recognition", fmt.seconds(u.spent.seconds)),
    );
    for (const [unit, left] of Object.entries(u.left || {})) {
      body.append(line(`left of ${fmt[unit](u.limits[unit], c)}`, fmt[unit](Math.max(left, 0), c)));
    }
    for (const [member, cost] of Object.entries(u.members || {})) {
      body.append(line(member, fmt.tokens(cost.tokens) + (c ? ` · ${fmt.money(cost.money, c)}` : "")));
    }
    if (u.resets_at) body.append(line("resets", new Date(u.resets_at).toLocaleString()));
    const link = document.createElement("a");
    link.textContent = "ledger (CSV)";
    link.href = Council.withToken(`/api/usage/ledger?format=csv&day=${u.day}`);
    body.append(link);
  }

  async function refresh() {
    try {
      // Not Council.fetch: the chat asks for a missing token; the panel just waits for it.
      const headers = Council.token() ? { Authorization: "Bearer " + Council.token() } : {};
      const response = await fetch("/api/usage", { headers });
      if (response.ok) render(await response.json());
      else summary.textContent = "usage: " + await Council.errorMessage(response);
    } catch { /* offline: try again later */ }
  }

  panel.addEventListener("toggle", () => { if (panel.open) refresh(); });
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 10000);
})();
