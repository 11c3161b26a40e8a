// POST /api/auth/login: the one call that answers `{success, message}` instead of the envelope.

import { ApiError, requestRaw } from "./http";
import type { LoginResponse } from "./types";

/** Resolves when the server accepts the admin key; a wrong key rejects with the server's message. */
export async function login(authKey: string): Promise<void> {
  const result = await requestRaw<Partial<LoginResponse> | undefined>("POST", "/auth/login", {
    body: { auth_key: authKey },
    noAuthRedirect: true,
  });
  if (!result?.success) throw new ApiError(401, "UNAUTHORIZED", result?.message ?? "Authentication failed");
}
