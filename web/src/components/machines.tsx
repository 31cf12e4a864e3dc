import type { Machine } from '../lib/types';
import { duration } from '../lib/format';
import { Badge, Empty, Pager, usePage } from './ui';

// MachinesTable lists machines, a page at a time.
export function MachinesTable({ machines, caption, showStack = true }: { machines: Machine[]; caption: string; showStack?: boolean }) {
  const pg = usePage(machines, 50);
  if (machines.length === 0) return <Empty>No machines yet.</Empty>;
  return (
    <>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">{caption}</caption>
          <thead>
            <tr>
              <th scope="col">Machine</th>
              <th scope="col">State</th>
              {showStack && <th scope="col">Stack</th>}
              <th scope="col">Provider</th>
              <th scope="col">Uptime</th>
              <th scope="col">Agent</th>
              <th scope="col">Always on</th>
            </tr>
          </thead>
          <tbody>
            {pg.rows.map((m) => (
              <tr key={m.id} data-machine={m.id} data-label={m.label}>
                <td>
                  <a href={`/machines/${encodeURIComponent(m.id)}`}>{m.label || m.id}</a>
                  <div class="muted small">{m.id}</div>
                </td>
                <td>
                  <Badge value={m.state} />
                  {m.reason && <div class="muted small">{m.reason}</div>}
                </td>
                {showStack && (
                  <td>
                    <a href={`/stacks/${encodeURIComponent(m.stack_id)}`}>{m.stack_id}</a>
                  </td>
                )}
                <td>{m.provider}</td>
                <td>{duration(m.uptime_seconds)}</td>
                <td>{m.agent ? <Badge value={m.agent.status} /> : '–'}</td>
                <td>{m.always_on ? 'yes' : 'no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager {...pg} />
    </>
  );
}
