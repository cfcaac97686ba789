"""URLs of the example shop."""

from django.urls import path

from . import views

urlpatterns = [
    path("accounts/<str:account_id>/upgrade/", views.upgrade, name="upgrade"),
    path("newsletter/subscribe/", views.subscribe, name="subscribe"),
]
