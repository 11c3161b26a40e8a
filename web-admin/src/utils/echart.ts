// One echarts instance bound to an element for a component's lifetime: created on mount, resized
// with its element, redrawn when its inputs change, disposed on unmount. The charts differ only in
// the options they draw.
import { onBeforeUnmount, onMounted, watch, type Ref } from "vue";
import { init, type ECharts } from "echarts/core";

/** Theme colours for axis text and grid lines. */
export function chartColors(dark: boolean): { text: string; grid: string } {
  return {
    text: dark ? "rgba(255,255,255,0.72)" : "rgba(0,0,0,0.62)",
    grid: dark ? "rgba(255,255,255,0.08)" : "rgba(0,0,0,0.06)",
  };
}

/**
 * Draws `options()` into `el` (nothing while it returns null), again whenever `inputs()` changes.
 * Options replace the previous ones entirely.
 */
export function useEChart(
  el: Ref<HTMLDivElement | null>,
  options: () => Record<string, unknown> | null,
  inputs: () => unknown,
): void {
  let chart: ECharts | null = null;
  let observer: ResizeObserver | null = null;
  const render = () => {
    const next = chart ? options() : null;
    if (chart && next) chart.setOption(next, true);
  };
  onMounted(() => {
    if (!el.value) return;
    chart = init(el.value);
    render();
    observer = new ResizeObserver(() => chart?.resize());
    observer.observe(el.value);
  });
  onBeforeUnmount(() => {
    observer?.disconnect();
    chart?.dispose();
    chart = null;
  });
  watch(inputs, render);
}
