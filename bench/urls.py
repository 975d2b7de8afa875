"""The project's URLs plus /bench/noop: DRF parses the JSON body and answers 202, nothing else.

That is the most any endpoint of this stack (gunicorn, Django, DRF, JSON) can do: the ceiling the
ingestion endpoint is compared with, measured on the same server in the same run.
"""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from impact.urls import urlpatterns as project_urlpatterns


class NoopView(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    def post(self, request):
        data = request.data  # parses the body, as the ingestion endpoint must
        return Response({"status": "accepted", "keys": len(data)}, status=202)


urlpatterns = [path("bench/noop", NoopView.as_view()), *project_urlpatterns]
handler404 = "reports.views.not_found"
handler500 = "reports.views.server_error"
