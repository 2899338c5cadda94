// The emoji names the client knows (Mattermost's names), for reactions and :name: in posts.
// A reaction with a name not listed here is shown by its name.

const EMOJI = {
  "+1": "👍",
  thumbsup: "👍",
  "-1": "👎",
  thumbsdown: "👎",
  smile: "😄",
  slightly_smiling_face: "🙂",
  laughing: "😆",
  joy: "😂",
  wink: "😉",
  heart: "❤️",
  tada: "🎉",
  eyes: "👀",
  rocket: "🚀",
  white_check_mark: "✅",
  heavy_check_mark: "✔️",
  x: "❌",
  fire: "🔥",
  thinking_face: "🤔",
  clap: "👏",
  pray: "🙏",
  wave: "👋",
  ok_hand: "👌",
  coffee: "☕",
  bug: "🐛",
  warning: "⚠️",
};

// The picker's choices, in order.
export const QUICK_REACTIONS = ["+1", "smile", "heart", "tada", "eyes", "rocket", "white_check_mark", "thinking_face"];

export function emojiChar(name) {
  return Object.hasOwn(EMOJI, name) ? EMOJI[name] : "";
}
