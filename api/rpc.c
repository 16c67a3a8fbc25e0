/*
 * rpc.c -- what qtuned and its clients share: the JSON-RPC code of a
 * result code, and where the daemon's state lives by default (api.h).
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>

int qt_rpc_code(int rc)
{
    switch (rc) {
    case QT_OK:       return 0;
    case QT_EINVAL:
    case QT_EPARSE:
    case QT_ERANGE:
    case QT_ECORRUPT: return QT_RPC_INVALID_PARAMS;
    case QT_ENOENT:   return QT_RPC_NOT_FOUND;
    case QT_EBUSY:    return QT_RPC_BUSY;
    case QT_ENOTSUP:  return QT_RPC_UNSUPPORTED;
    case QT_EIO:
    case QT_EFULL:    return QT_RPC_IO;
    default:          return QT_RPC_INTERNAL;
    }
}

void qt_api_default_state(char *out, size_t n)
{
    const char *s = getenv("QTUNE_STATE");
    if (s && *s) { snprintf(out, n, "%s", s); return; }
    if ((s = getenv("XDG_STATE_HOME")) && *s) { snprintf(out, n, "%s/qtune", s); return; }
    if ((s = getenv("HOME")) && *s) { snprintf(out, n, "%s/.local/state/qtune", s); return; }
    snprintf(out, n, "qtune-state");
}
