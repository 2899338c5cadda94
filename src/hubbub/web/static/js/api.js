// The REST API v4, as the official web app calls it: a cookie session (MMAUTHTOKEN, set by
// login because we send X-Requested-With: XMLHttpRequest) and, on every request that changes
// something, the X-CSRF-Token header copied from the MMCSRF cookie.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.id = (body && body.id) || "";
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export class Api {
  constructor(base = "/api/v4") {
    this.base = base;
    this.onUnauthorized = () => {};
  }

  headers(method) {
    const headers = { "X-Requested-With": "XMLHttpRequest" };
    if (!SAFE_METHODS.has(method)) headers["X-CSRF-Token"] = cookie("MMCSRF");
    return headers;
  }

  async request(method, path, body) {
    const headers = this.headers(method);
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.base + path, init);
    const type = response.headers.get("Content-Type") || "";
    const data = type.startsWith("application/json") ? await response.json() : null;
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && path !== "/users/login") this.onUnauthorized(error);
      throw error;
    }
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }
  post(path, body = {}) {
    return this.request("POST", path, body);
  }
  put(path, body = {}) {
    return this.request("PUT", path, body);
  }
  del(path) {
    return this.request("DELETE", path);
  }

  // Uploads one file to a channel; `onProgress(fraction)` as it goes. XMLHttpRequest because
  // fetch() cannot report upload progress.
  upload(channelId, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${this.base}/files`);
      for (const [name, value] of Object.entries(this.headers("POST"))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.responseType = "json";
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response.file_infos[0]);
        else reject(new ApiError(xhr.status, xhr.response));
      };
      xhr.onerror = () => reject(new ApiError(0, { message: "The upload failed (network)." }));
      const form = new FormData();
      form.append("channel_id", channelId);
      form.append("files", file, file.name);
      xhr.send(form);
    });
  }

  login(loginId, password) {
    return this.post("/users/login", { login_id: loginId, password });
  }
}
