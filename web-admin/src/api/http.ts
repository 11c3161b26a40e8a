// The one place requests to /api are made: it adds the admin key and the UI language, unwraps
// GPT-Load's envelope, and turns every failure into an ApiError carrying the server's message.

import type { Envelope } from "./types";

const AUTH_STORAGE = "authKey";
const LOCALE_STORAGE = "locale";
const TIMEOUT_MS = 60_000;

/** A failed API call: HTTP status, the server's string code and its (localised) message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let onUnauthorized: () => void = () => {};

/** Called once by the router: what to do when the server answers 401. */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export function getAuthKey(): string {
  return localStorage.getItem(AUTH_STORAGE) ?? "";
}

export function setAuthKey(key: string): void {
  localStorage.setItem(AUTH_STORAGE, key);
}

export function clearAuthKey(): void {
  localStorage.removeItem(AUTH_STORAGE);
}

export function currentLocale(): string {
  return localStorage.getItem(LOCALE_STORAGE) ?? "en-US";
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface RequestOptions {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as multipart/form-data (file uploads). */
  form?: FormData;
  /** Skip the 401 → login redirect (the login call itself). */
  noAuthRedirect?: boolean;
}

export function buildQuery(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** A URL the browser opens itself (downloads), authenticated with `?key=` as GPT-Load's UI does. */
export function downloadUrl(path: string, query: Query = {}): string {
  return `/api${path}${buildQuery({ ...query, key: getAuthKey() })}`;
}

function headers(options: RequestOptions): Headers {
  const result = new Headers({ Accept: "application/json", "Accept-Language": currentLocale() });
  const key = getAuthKey();
  if (key) result.set("Authorization", `Bearer ${key}`);
  if (options.body !== undefined && !options.form) result.set("Content-Type", "application/json");
  return result;
}

async function parse(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function errorFrom(status: number, payload: unknown, path: string): ApiError {
  if (payload && typeof payload === "object") {
    const p = payload as { code?: unknown; message?: unknown; error?: unknown };
    if (typeof p.message === "string" && p.message) {
      return new ApiError(status, typeof p.code === "string" ? p.code : `HTTP_${status}`, p.message);
    }
    // GPT-Load answers unknown /api paths with {"error": "Not Found"}: the server lacks this route.
    if (typeof p.error === "string") {
      return new ApiError(status, status === 404 ? "NOT_FOUND" : `HTTP_${status}`, `${p.error}: /api${path}`);
    }
  }
  const text = typeof payload === "string" && payload.length < 300 ? payload : "";
  return new ApiError(status, `HTTP_${status}`, text || `HTTP ${status} from /api${path}`);
}

/** Sends a request and returns the raw JSON body (for the few routes without the envelope), typed as `T`. */
export async function requestRaw<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(`/api${path}${buildQuery(options.query)}`, {
      method,
      headers: headers(options),
      body: options.form ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
      signal: controller.signal,
    });
  } catch (err) {
    const aborted = err instanceof DOMException && err.name === "AbortError";
    throw new ApiError(0, aborted ? "TIMEOUT" : "NETWORK_ERROR", aborted ? "The server did not answer within 60 s" : "The server cannot be reached");
  } finally {
    clearTimeout(timer);
  }
  const payload = await parse(response);
  if (response.status === 401 && !options.noAuthRedirect) {
    clearAuthKey();
    onUnauthorized();
  }
  if (!response.ok) throw errorFrom(response.status, payload, path);
  return payload as T;
}

/** Sends a request and unwraps `{"code": 0, "message", "data"}`. */
export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<Envelope<T>> {
  const payload = await requestRaw(method, path, options);
  if (!payload || typeof payload !== "object" || (payload as Envelope<T>).code !== 0) {
    throw errorFrom(200, payload, path);
  }
  return payload as Envelope<T>;
}

/** The `data` of a successful call: the one place the envelope's optional `data` is taken as `T`. */
async function data<T>(method: string, path: string, options: RequestOptions): Promise<T> {
  return (await request<T>(method, path, options)).data as T;
}

/** The `data` of a successful GET. */
export function get<T>(path: string, query?: Query): Promise<T> {
  return data<T>("GET", path, { query });
}

/** The `data` of a successful POST of `body` (JSON), or of `options.form` (multipart). */
export function post<T>(path: string, body?: unknown, options: Omit<RequestOptions, "body"> = {}): Promise<T> {
  return data<T>("POST", path, { ...options, body });
}

/** The `data` of a successful PUT of `body` (JSON). */
export function put<T>(path: string, body?: unknown, options: Omit<RequestOptions, "body"> = {}): Promise<T> {
  return data<T>("PUT", path, { ...options, body });
}
