-- wrk: POST /v1/tasks with a 10 ms sleep task (bench/flood.py: a flood that keeps workers busy).
wrk.method = "POST"
wrk.body = '{"kind":"sleep","seconds":0.01}'
wrk.headers["Content-Type"] = "application/json"
