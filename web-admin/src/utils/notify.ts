// Toasts in one style: successes show the server's message, failures show the server's error
// message for 5 s (reference §12.1).

import { useMessage } from "naive-ui";
import { ApiError } from "../api/http";

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function useNotify() {
  const message = useMessage();
  return {
    ok(text: string) {
      message.success(text);
    },
    info(text: string) {
      message.info(text);
    },
    fail(err: unknown) {
      // A 401 already sent the user to the login page; a toast on top adds nothing.
      if (err instanceof ApiError && err.status === 401) return;
      message.error(errorText(err), { duration: 5000 });
    },
  };
}
