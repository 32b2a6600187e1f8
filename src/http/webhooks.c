/* WebhookTrigger: POST /v1/webhooks/{name}. */
#include "http/http.h"

static void webhook(jb_http_req *req, jb_http_resp *resp) {
  jb_http_problem(resp, 404, "name", "no webhook is named \"%s\"", req->params[0]);
}

const jb_http_route jb_http_webhook_routes[] = {
    {"POST", "/v1/webhooks/{name}", JB_SCOPE_PUBLIC, webhook},
};
const size_t jb_http_webhook_nroutes =
    sizeof jb_http_webhook_routes / sizeof jb_http_webhook_routes[0];
