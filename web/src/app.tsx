// App is the dashboard's shell: sign-in, the navigation, and the page the
// URL names. Pages load on demand, so the first page's JavaScript stays
// small (the terminal and the charts come with their pages).
import type { ComponentType } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, del, get, whenUnauthorized } from './lib/api';
import { match, navigate, onLinkClick, useLocation } from './lib/router';
import { SessionContext, isAdmin } from './lib/session';
import type { Session, User } from './lib/types';
import { ErrorBox, Loading } from './components/ui';
import { Login } from './pages/login';

// Pages take their URL's named parts (id) as props.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type PageComponent = ComponentType<any>;
type Loader = () => Promise<{ default: PageComponent }>;

interface Route {
  pattern: string;
  load: Loader;
  admin?: boolean;
}

const routes: Route[] = [
  { pattern: '/', load: () => import('./pages/home') },
  { pattern: '/stacks', load: () => import('./pages/stacks') },
  { pattern: '/stacks/:id', load: () => import('./pages/stack') },
  { pattern: '/templates', load: () => import('./pages/templates') },
  { pattern: '/templates/:id', load: () => import('./pages/template') },
  { pattern: '/machines', load: () => import('./pages/machines') },
  { pattern: '/machines/:id', load: () => import('./pages/machine') },
  { pattern: '/credentials', load: () => import('./pages/credentials') },
  { pattern: '/billing', load: () => import('./pages/billing') },
  { pattern: '/admin', load: () => import('./pages/admin'), admin: true },
];

const nav: { href: string; label: string; admin?: boolean }[] = [
  { href: '/', label: 'Overview' },
  { href: '/stacks', label: 'Stacks' },
  { href: '/machines', label: 'Machines' },
  { href: '/templates', label: 'Templates' },
  { href: '/credentials', label: 'Credentials' },
  { href: '/billing', label: 'Billing' },
  { href: '/admin', label: 'Admin', admin: true },
];

const loaded = new Map<Loader, PageComponent>();

function Page({ route, params }: { route: Route; params: Record<string, string> }) {
  const [, setTick] = useState(0);
  const [error, setError] = useState<unknown>(undefined);
  const C = loaded.get(route.load);
  useEffect(() => {
    if (C) return;
    let live = true;
    route.load().then(
      (m) => {
        loaded.set(route.load, m.default);
        if (live) setTick((n) => n + 1);
      },
      (e: unknown) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [route, C]);
  if (error) return <ErrorBox error={error} title="This page could not load (was Kloud updated? reload the page)" />;
  if (!C) return <Loading />;
  return <C {...params} />;
}

function NotFound() {
  return (
    <div>
      <h1 id="page-title" tabIndex={-1}>
        Not found
      </h1>
      <p>
        There is no page at <code>{location.pathname}</code>. <a href="/">Go to the overview</a>.
      </p>
    </div>
  );
}

export function App() {
  const loc = useLocation();
  const [user, setUser] = useState<User | null>(null);
  const [checked, setChecked] = useState(false);
  const [error, setError] = useState<unknown>(undefined);

  const loadSession = useCallback(async () => {
    try {
      const s = await get<Session>('/api/v1/sessions');
      setUser(s.user);
      setError(undefined);
    } catch (e) {
      setUser(null);
      if (!(e instanceof ApiError && e.status === 401)) setError(e);
    } finally {
      setChecked(true);
    }
  }, []);

  useEffect(() => {
    whenUnauthorized(() => {
      setUser(null);
      if (location.pathname !== '/login') navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    });
    if (location.pathname !== '/login') void loadSession();
    else setChecked(true);
  }, [loadSession]);

  // Focus the new page's heading after a navigation, for keyboard and
  // screen-reader users.
  useEffect(() => {
    const t = window.setTimeout(() => document.getElementById('page-title')?.focus({ preventScroll: true }), 50);
    return () => window.clearTimeout(t);
  }, [loc.path]);

  if (loc.path === '/login') {
    return (
      <Login
        onSignedIn={(u) => {
          setUser(u);
          const next = loc.search.get('next');
          navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
        }}
      />
    );
  }
  if (!checked) return <Loading what="Signing in" />;
  if (!user) {
    if (error) {
      return (
        <main class="center">
          <ErrorBox error={error} title="Kloud did not answer" />
          <button type="button" onClick={() => void loadSession()}>
            Try again
          </button>
        </main>
      );
    }
    navigate(`/login?next=${encodeURIComponent(loc.path + location.search)}`, { replace: true });
    return null;
  }

  let page = <NotFound />;
  for (const r of routes) {
    const params = match(r.pattern, loc.path);
    if (!params) continue;
    page = r.admin && !isAdmin(user) ? <p role="alert">This page is for admins.</p> : <Page key={r.pattern + loc.path} route={r} params={params} />;
    break;
  }

  const signOut = async () => {
    try {
      await del('/api/v1/sessions');
    } finally {
      setUser(null);
      navigate('/login', { replace: true });
    }
  };

  return (
    <SessionContext.Provider value={user}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <div class="layout" onClick={onLinkClick}>
        <header class="top">
          <a href="/" class="brand">
            Kloud
          </a>
          <nav aria-label="main">
            <ul>
              {nav
                .filter((n) => !n.admin || isAdmin(user))
                .map((n) => {
                  const current = n.href === '/' ? loc.path === '/' : loc.path === n.href || loc.path.startsWith(n.href + '/');
                  return (
                    <li key={n.href}>
                      <a href={n.href} aria-current={current ? 'page' : undefined}>
                        {n.label}
                      </a>
                    </li>
                  );
                })}
            </ul>
          </nav>
          <div class="who">
            <span title={user.id}>
              {user.name} <span class="muted">({user.role})</span>
            </span>
            <button type="button" class="link" onClick={() => void signOut()}>
              Sign out
            </button>
          </div>
        </header>
        <main id="main">{page}</main>
      </div>
    </SessionContext.Provider>
  );
}
