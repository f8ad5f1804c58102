#!/usr/bin/env bash
# The beatx demo: migrate, create an admin login and the demo jobs, then run a beat, a worker
# and the Django admin together, and follow the worker's log. Ctrl-C stops everything.
#
#   ./example_project/run_demo.sh            # SQLite + a file-system broker, no server needed
#   REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgresql://postgres@127.0.0.1/beatx_demo ./run_demo.sh
set -euo pipefail

cd "$(dirname "$0")"
PYTHON="${PYTHON:-$(cd .. && pwd)/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
PORT="${PORT:-8000}"
VAR="${BEATX_DEMO_VAR:-$PWD/var}"
mkdir -p "$VAR/log"
export DJANGO_SETTINGS_MODULE=example_project.settings PYTHONUNBUFFERED=1

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "Stopping beat, worker and web server..."
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "Stopped."
}
trap stop INT TERM EXIT

"$PYTHON" manage.py migrate --verbosity 0
PASSWORD="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(12))')"
"$PYTHON" manage.py shell --no-imports -c "
from django.contrib.auth import get_user_model
User = get_user_model()
user, _ = User.objects.get_or_create(username='admin', defaults={'email': 'admin@example.com'})
user.is_staff = user.is_superuser = True
user.set_password('$PASSWORD')
user.save()
"
"$PYTHON" manage.py create_demo_jobs

"$PYTHON" -m celery -A example_project beat -S beatx --loglevel INFO >"$VAR/log/beat.log" 2>&1 &
pids+=($!)
"$PYTHON" -m celery -A example_project worker --pool solo --loglevel INFO >"$VAR/log/worker.log" 2>&1 &
pids+=($!)
"$PYTHON" manage.py runserver "127.0.0.1:$PORT" --noreload >"$VAR/log/web.log" 2>&1 &
pids+=($!)

cat <<INFO

  beatx demo is running
  ---------------------
  admin:    http://127.0.0.1:$PORT/admin/django_beatx/job/
  login:    admin / $PASSWORD
  logs:     $VAR/log/{beat,worker,web}.log
  status:   $PYTHON manage.py beatx_status

  Pause a job in the admin and watch it stop below within a second. Ctrl-C stops everything.

INFO
tail -n 0 -F "$VAR/log/worker.log" | grep --line-buffered -E "succeeded|raised" &
pids+=($!)
wait "${pids[0]}"
