// Log in and sign up. Logging in sets the session cookies (the server does so because every
// request carries X-Requested-With: XMLHttpRequest); `onDone(user)` continues.

import { h, replaceChildren } from "./dom.js";

function field(form, label, attrs) {
  const id = `${form}-${attrs.name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, ...attrs }));
}

export function showAuth(root, { api, siteName, allowSignup = true, onDone }) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const fail = (message) => {
    error.textContent = message;
    error.hidden = false;
  };

  const login = h(
    "form",
    {
      class: "card auth-form",
      "aria-labelledby": "login-title",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(login);
        try {
          onDone(await api.login(data.get("login_id"), data.get("password")));
        } catch (e) {
          fail(e.message);
        }
      },
    },
    h("h1", { id: "login-title" }, `Log in to ${siteName}`),
    field("login", "Email or username", { name: "login_id", autocomplete: "username", required: true }),
    field("login", "Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit", class: "primary" }, "Log in"),
  );

  const signup = h(
    "form",
    {
      class: "card auth-form",
      "aria-labelledby": "signup-title",
      hidden: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(signup);
        try {
          await api.post("/users", {
            email: data.get("email"),
            username: data.get("username"),
            password: data.get("password"),
          });
          onDone(await api.login(data.get("username"), data.get("password")));
        } catch (e) {
          fail(e.message);
        }
      },
    },
    h("h1", { id: "signup-title" }, "Create an account"),
    field("signup", "Email", { name: "email", type: "email", autocomplete: "email", required: true }),
    field("signup", "Username", { name: "username", autocomplete: "username", required: true }),
    field("signup", "Password", { name: "password", type: "password", autocomplete: "new-password", required: true }),
    h("button", { type: "submit", class: "primary" }, "Create account"),
  );

  const switcher = h("button", { type: "button", class: "link" }, "Create an account");
  switcher.addEventListener("click", () => {
    const toSignup = signup.hidden;
    signup.hidden = !toSignup;
    login.hidden = toSignup;
    error.hidden = true;
    switcher.textContent = toSignup ? "I already have an account" : "Create an account";
    (toSignup ? signup : login).querySelector("input").focus();
  });

  replaceChildren(root, h("main", { class: "auth" }, login, signup, error, allowSignup ? switcher : null));
  login.querySelector("input").focus();
}
