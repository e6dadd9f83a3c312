import { h, message } from './dom.ts';
import { renderJob } from './job.ts';
import { renderList } from './list.ts';
import { renderRun } from './run.ts';

/** One page for every console path: /ui/, /ui/jobs/<id>, /ui/run/<hook path>. */
async function route(): Promise<void> {
  const main = document.getElementById('main') as HTMLElement;
  const path = location.pathname;
  try {
    const job = /^\/ui\/jobs\/([^/]+)\/?$/.exec(path);
    if (job) return await renderJob(main, decodeURIComponent(job[1] ?? ''));
    const run = /^\/ui\/run\/(.+)$/.exec(path);
    if (run) return await renderRun(main, decodeURIComponent(run[1] ?? '').replace(/\/$/, ''));
    return await renderList(main, new URLSearchParams(location.search));
  } catch (err) {
    main.replaceChildren(h('h1', {}, 'armhook'), message((err as Error).message));
  }
}

void route();
