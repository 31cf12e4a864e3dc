// CostChart draws cost per bucket with uPlot, and a table of the same
// numbers for screen readers and for copying.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { xRange, type Resolution, type Series } from '../lib/chartdata';

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function CostChart({ series, resolution, currency }: { series: Series; resolution: Resolution; currency: string }) {
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fg = cssVar('--fg', '#222');
    const accent = cssVar('--accent', '#2463eb');
    const grid = cssVar('--border', '#ddd');
    const width = () => Math.max(280, el.clientWidth);
    const opts: uPlot.Options = {
      width: width(),
      height: 260,
      title: `Cost per ${resolution}`,
      scales: { x: { time: true, range: (_u, min, max) => xRange(min, max, resolution) } },
      legend: { show: true },
      axes: [
        { stroke: fg, grid: { stroke: grid } },
        { stroke: fg, grid: { stroke: grid }, values: (_u, vals) => vals.map((v) => v.toFixed(4).replace(/\.?0+$/, '')) },
      ],
      series: [
        {},
        {
          label: `cost (${currency})`,
          stroke: accent,
          fill: accent + '55',
          width: 1,
          paths: uPlot.paths.bars!({ size: [0.7, 60], align: 1 }),
          points: { show: false },
        },
      ],
    };
    const plot = new uPlot(opts, [series.xs, series.ys], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: width(), height: 260 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [series, resolution, currency]);

  const rows = series.xs.map((x, i) => [x, series.ys[i] ?? 0] as const).filter(([, y]) => y > 0);
  return (
    <figure class="chart" data-points={rows.length}>
      <div ref={box} class="chart-canvas" aria-hidden="true" />
      <figcaption class="muted">
        Total {series.total.toFixed(4).replace(/\.?0+$/, '') || '0'} {currency} over {series.xs.length} {resolution}
        {series.xs.length === 1 ? '' : 's'}
      </figcaption>
      <details>
        <summary>The numbers behind the chart</summary>
        <table class="chart-data">
          <caption class="sr-only">Cost per {resolution}</caption>
          <thead>
            <tr>
              <th scope="col">{resolution === 'day' ? 'Day' : resolution === 'hour' ? 'Hour' : 'Minute'}</th>
              <th scope="col">Cost</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr>
                <td colSpan={2}>No cost in this range.</td>
              </tr>
            ) : (
              rows.map(([x, y]) => (
                <tr key={x}>
                  <td>{resolution === 'day' ? new Date(x * 1000).toLocaleDateString() : new Date(x * 1000).toLocaleString()}</td>
                  <td class="num">{y}</td>
                </tr>
              ))
            )}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
