// The fake kube-apiserver lives in the product now (deploy/local/apiserver: the local cluster's
// API server); tests keep including it by this name.
#pragma once

#include "deploy/local/apiserver/fake_apiserver.h"
