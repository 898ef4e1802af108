/* A small nbdkit plugin of nbdd's tests, built against nbdkit's own header: it serves
 * bytes (offset & 0xff) and, for reads at special offsets, calls the nbdkit functions
 * whose effect the tests check from the outside:
 *   sector 1: nbdkit_disconnect(0)   sector 2: nbdkit_disconnect(1)
 *   sector 3: nbdkit_shutdown()      sector 4: nbdkit_nanosleep(30, 0), failing ESHUTDOWN
 *   sector 5: fails with nbdkit_set_error(ENOSPC)
 *   sector 6: sleeps 1 s with nanosleep(2) (not nbdkit_nanosleep: nothing wakes it early),
 *             then succeeds: a request still in flight when another one disconnects
 * Every lifecycle callback appends a line to log=FILE (load, config_complete, get_ready,
 * after_fork, preconnect, open NAME, close NAME, cleanup, unload), so a test can count them.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Not in nbdkit 1.32's header (nbdkit 1.34 added it); nbdd provides it. */
extern void nbdkit_disconnect (int force);

static int64_t size = 1024 * 1024;
static const char *log_path;
static int ready_model = -1; /* thread_model=N: what the .thread_model callback answers */

static void
log_line (const char *fmt, const char *arg)
{
  FILE *fp;
  if (!log_path)
    return;
  fp = fopen (log_path, "a");
  if (!fp)
    return;
  fprintf (fp, fmt, arg ? arg : "");
  fputc ('\n', fp);
  fclose (fp);
}

static void probe_load (void) { log_line ("load", NULL); }
static void probe_unload (void) { log_line ("unload", NULL); }
static void probe_cleanup (void) { log_line ("cleanup", NULL); }

static int
probe_config (const char *key, const char *value)
{
  if (strcmp (key, "size") == 0) {
    size = nbdkit_parse_size (value);
    return size == -1 ? -1 : 0;
  }
  if (strcmp (key, "log") == 0) {
    log_path = nbdkit_strdup_intern (value);
    return log_path ? 0 : -1;
  }
  if (strcmp (key, "thread_model") == 0)
    return nbdkit_parse_int ("thread_model", value, &ready_model);
  nbdkit_error ("unknown parameter '%s'", key);
  return -1;
}

static int probe_config_complete (void) { log_line ("config_complete", NULL); return 0; }
static int probe_thread_model (void) { return ready_model >= 0 ? ready_model : THREAD_MODEL; }
static int probe_get_ready (void) { log_line ("get_ready", NULL); return 0; }
static int probe_after_fork (void) { log_line ("after_fork", NULL); return 0; }
static int probe_preconnect (int readonly) { log_line ("preconnect", NULL); return 0; }

static int
probe_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  if (nbdkit_add_export (exports, "a", "first") == -1 ||
      nbdkit_add_export (exports, "b", NULL) == -1)
    return -1;
  return nbdkit_use_default_export (exports);
}

static const char *
probe_default_export (int readonly, int is_tls)
{
  return nbdkit_strdup_intern ("default");
}

struct handle { char name[64]; };

static void *
probe_open (int readonly)
{
  struct handle *h;
  const char *name = nbdkit_export_name ();
  if (name == NULL)
    return NULL;
  if (strcmp (name, "missing") == 0) {
    nbdkit_error ("no export named %s", name);
    nbdkit_set_error (ENOENT);
    return NULL;
  }
  h = calloc (1, sizeof *h);
  if (!h) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  snprintf (h->name, sizeof h->name, "%s", name);
  log_line ("open %s", name);
  return h;
}

static void
probe_close (void *handle)
{
  struct handle *h = handle;
  log_line ("close %s", h->name);
  free (h);
}

/* "export=NAME tls=0": what nbdkit_export_name and nbdkit_is_tls say in a callback. */
static const char *
probe_export_description (void *handle)
{
  return nbdkit_printf_intern ("export=%s tls=%d", nbdkit_export_name (), nbdkit_is_tls ());
}

static int64_t probe_get_size (void *handle) { return size; }
static int probe_can_multi_conn (void *handle) { return 1; }

static int
probe_pread (void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  uint32_t i;
  switch (offset / 512) {
  case 1: nbdkit_disconnect (0); break;
  case 2: nbdkit_disconnect (1); break;
  case 3: nbdkit_shutdown (); break;
  case 4:
    if (nbdkit_nanosleep (30, 0) == -1) {
      nbdkit_set_error (errno);
      return -1;
    }
    break;
  case 5:
    nbdkit_error ("sector 5 always fails");
    nbdkit_set_error (ENOSPC);
    return -1;
  case 6: {
    struct timespec ts = { .tv_sec = 1, .tv_nsec = 0 };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
      ;
    break;
  }
  }
  for (i = 0; i < count; ++i)
    ((unsigned char *) buf)[i] = (unsigned char) ((offset + i) & 0xff);
  return 0;
}

static void
probe_dump_plugin (void)
{
  printf ("probe_dump=yes\n");
}

static struct nbdkit_plugin plugin = {
  .name = "nbddprobe",
  .longname = "nbdd test probe",
  .version = "1.0",
  .description = "nbdd's probe of the nbdkit ABI",
  .load = probe_load,
  .unload = probe_unload,
  .config = probe_config,
  .config_complete = probe_config_complete,
  .config_help = "size=SIZE  log=FILE  thread_model=N",
  .thread_model = probe_thread_model,
  .get_ready = probe_get_ready,
  .after_fork = probe_after_fork,
  .cleanup = probe_cleanup,
  .preconnect = probe_preconnect,
  .list_exports = probe_list_exports,
  .default_export = probe_default_export,
  .open = probe_open,
  .close = probe_close,
  .export_description = probe_export_description,
  .get_size = probe_get_size,
  .can_multi_conn = probe_can_multi_conn,
  .pread = probe_pread,
  .dump_plugin = probe_dump_plugin,
  .magic_config_key = "size",
};

NBDKIT_REGISTER_PLUGIN (plugin)
