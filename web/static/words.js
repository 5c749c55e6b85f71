// What the chat page says to people. The server's messages about what a person can act on (a
// budget, a limit, a lost worker) are written for them already. A frame the page got wrong is the
// page's business: those codes are said in words a person can use, and a message that speaks the
// protocol's language never reaches the page. Also: how to allow a blocked microphone, per browser.
Council.words = (() => {
  const FOR_PEOPLE = {
    bad_frame: "Something went wrong between this page and the server. Reload the page; if it happens again, tell whoever runs this Council.",
    frame_too_large: "That message is too long to send in one go. Shorten it, or send it in parts.",
    bad_state: "The microphone was just opening or closing. Try again.",
    empty_audio: "Nothing was recorded. Click the microphone, speak, then click it again.",
    audio_too_large: "That recording is too long to send. Keep one spoken message short, or use hands-free.",
    bad_event_id: "This page's place in the conversation could not be read. Reload the page.",
    internal: "Something went wrong on the server. Try again; if it happens again, tell whoever runs this Council.",
  };
  const PROTOCOL_WORDS = /\b(frames?|audio_start|audio_end|listen_end|payload|PROTOCOL\.md|session_id|last_event_id|stream_id)\b/i;

  // The words to show for an error {code, message}.
  function forError(error) {
    if (FOR_PEOPLE[error.code]) return FOR_PEOPLE[error.code];
    if (!error.message || PROTOCOL_WORDS.test(error.message)) return FOR_PEOPLE.bad_frame;
    return error.message;
  }

  function howToAllow(userAgent) {
    const how = /iPhone|iPad|iPod/.test(userAgent)
      ? "Safari on iPhone: tap “aA” in the address bar, then Website Settings › Microphone › Allow, and reload the page (or Settings › Apps › Safari › Microphone)."
      : /Firefox\//.test(userAgent)
        ? "Firefox: click the crossed-out microphone in the address bar, remove the blocked permission, then click the microphone here again."
        : /Edg\//.test(userAgent)
          ? "Edge: click the lock left of the address, then Permissions for this site › Microphone › Allow, and reload the page."
          : "Chrome: click the site settings icon left of the address, set Microphone to Allow, and reload the page.";
    return `The microphone is blocked for this site, so the council cannot hear you (typing still works). To allow it in ${how}`;
  }

  // Why the microphone did not start (a getUserMedia error's name), for those the page cannot fix
  // by itself (a blocked one: `howToAllow`; one that wants a click: the "Resume listening" button).
  const MIC_ERRORS = {
    NotFoundError: "No microphone was found. Plug one in (or choose one in your system's sound settings), then click the microphone again.",
    NotReadableError: "The microphone could not start: another app may be using it. Close that app, then click the microphone again.",
  };

  function micError(name) {
    return MIC_ERRORS[name] || "The microphone could not start here. Click it to try again, or type your message.";
  }

  return { forError, howToAllow, micError };
})();
