-- wrk: POST /v1/tasks with a zero-second sleep task (measures admission, not the work).
wrk.method = "POST"
wrk.body = '{"kind":"sleep","seconds":0}'
wrk.headers["Content-Type"] = "application/json"
