// History-mode routes (reference §12.1): everything but /login needs the admin key.

import { createRouter, createWebHistory } from "vue-router";
import { getAuthKey, setUnauthorizedHandler } from "./api/http";
import MainLayout from "./layouts/MainLayout.vue";
import LoginView from "./views/LoginView.vue";

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: "/login", name: "login", component: LoginView },
    {
      path: "/",
      component: MainLayout,
      children: [
        { path: "", name: "dashboard", component: () => import("./views/DashboardView.vue") },
        { path: "keys", name: "keys", component: () => import("./views/KeysView.vue") },
        { path: "logs", name: "logs", component: () => import("./views/LogsView.vue") },
        { path: "usage", name: "usage", component: () => import("./views/UsageView.vue") },
        { path: "settings", name: "settings", component: () => import("./views/SettingsView.vue") },
      ],
    },
    { path: "/:pathMatch(.*)*", redirect: "/" },
  ],
});

router.beforeEach((to) => {
  const loggedIn = !!getAuthKey();
  if (to.name !== "login" && !loggedIn) return { name: "login", query: to.fullPath !== "/" ? { redirect: to.fullPath } : {} };
  if (to.name === "login" && loggedIn) return { name: "dashboard" };
  return true;
});

setUnauthorizedHandler(() => {
  if (router.currentRoute.value.name !== "login") void router.push({ name: "login" });
});
