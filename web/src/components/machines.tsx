import type { Machine } from '../lib/types';
import { duration } from '../lib/format';
import { Badge, Empty, Table } from './ui';

// MachinesTable lists machines, a page at a time.
export function MachinesTable({ machines, caption, showStack = true }: { machines: Machine[]; caption: string; showStack?: boolean }) {
  if (machines.length === 0) return <Empty>No machines yet.</Empty>;
  const head = ['Machine', 'State', ...(showStack ? ['Stack'] : []), 'Provider', 'Uptime', 'Agent', 'Always on'];
  return (
    <Table
      caption={caption}
      head={head}
      items={machines}
      row={(m) => (
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
      )}
    />
  );
}
