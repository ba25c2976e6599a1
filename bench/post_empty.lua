-- wrk: the original's POST /v1/create-task/ (body ignored; the server runs its default task).
wrk.method = "POST"
