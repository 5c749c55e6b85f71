// Shared by the chat and batch pages: the API token and authorized fetches.
const Council = {
  token: () => localStorage.getItem("council.token") || "",
  setToken: (t) => localStorage.setItem("council.token", t),
  withToken(url) {
    const t = Council.token();
    if (!t) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t);
  },
  async fetch(url, options = {}) {
    const headers = new Headers(options.headers || {});
    if (Council.token()) headers.set("Authorization", "Bearer " + Council.token());
    const response = await fetch(url, { ...options, headers });
    if (response.status === 401 && await Council.askToken()) return Council.fetch(url, options);
    return response;
  },
  askToken() {
    const dialog = document.getElementById("token-dialog");
    const input = document.getElementById("token-input");
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        if (input.value) Council.setToken(input.value);
        resolve(Boolean(input.value));
      }, { once: true });
      dialog.showModal();
    });
  },
  async errorMessage(response) {
    try { return (await response.json()).error.message; } catch { return response.statusText; }
  },
};
